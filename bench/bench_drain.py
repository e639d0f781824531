"""The drain: ``deliver --concurrency 4`` against ``--concurrency 1`` over HTTP with 20 ms per answer.

The sandbox runs in a process of its own (as HAVN is elsewhere), with 20 ms
of latency added to every API answer and no rate limit; the host app is on a
SQLite file (WAL) or, when ``HAVN_TEST_POSTGRES_URL`` is set, on PostgreSQL.
Each round records N payments, then drains them with one thread and with
four, alternately; printed: seconds per payment of each, and the speed-up
(goal ≥ 3×). ``--quick``: 200 payments, one round; otherwise 2,000, three.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN
from flask_havn.config import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET
from flask_havn.state import get_state

from ._outbox_rows import add_payments

LATENCY = 0.020
_SERVER = """
import sys
from flask_havn.sandbox.server import SandboxServer
unlimited = {k: 10 ** 9 for k in ("transaction", "user_sync", "voucher_validate", "vouchers", "login")}
server = SandboxServer(config={"HAVN_SANDBOX_SEED": 3, "HAVN_SANDBOX_RATE_LIMITS": unlimited}).start()
server.state.faults.configure({"latency": %r})
print(server.url, flush=True)
sys.stdin.readline()
server.stop(raise_errors=False)
"""


def _start_sandbox() -> Tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", _SERVER % LATENCY], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _stop_sandbox(proc: subprocess.Popen) -> None:
    """Ask the sandbox process to stop, wait for it, close its pipes."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)
    proc.stdin.close()
    proc.stdout.close()


def _no_fsync(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _host(url: str, database: str) -> Flask:
    app = Flask("bench_drain")
    app.config.update(SQLALCHEMY_DATABASE_URI=database, HAVN_BASE_URL=url, HAVN_API_KEY=SANDBOX_API_KEY,
                      HAVN_WEBHOOK_SECRET=SANDBOX_WEBHOOK_SECRET, HAVN_DELIVERY="worker", HAVN_MAX_RETRIES=0)
    if database.startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    db = SQLAlchemy(app)
    HAVN(app, db=db, routes=False)
    with app.app_context():
        if database.startswith("sqlite"):
            sa.event.listen(db.engine, "connect", _no_fsync)
            db.engine.dispose()
        db.drop_all()
        db.create_all()
        project = app.extensions["havn"].projects.create("Drain")
        project.sync_state = "synced"
        db.session.commit()
    return app


def _record(app: Flask, count: int, tag: str) -> None:
    with app.app_context():
        add_payments(get_state().session, (f"drain-{tag}-{n}" for n in range(count)))
        get_state().session.commit()


def _drain(app: Flask, concurrency: int) -> Dict[str, int]:
    with app.app_context():
        return get_state().outbox.deliver_due(concurrency=concurrency)


def _measure(database: str, url: str, count: int, rounds: int, label: str) -> None:
    app = _host(url, database)
    times: Dict[int, List[float]] = {1: [], 4: []}
    try:
        for round_no in range(rounds):
            for threads in (1, 4) if round_no % 2 == 0 else (4, 1):
                _record(app, count, f"{round_no}-{threads}")
                started = time.perf_counter()
                counts = _drain(app, threads)
                times[threads].append((time.perf_counter() - started) / count)
                assert counts["sent"] == count, counts
    finally:
        with app.app_context():
            get_state().session.remove()
            get_state().db.drop_all()  # type: ignore[union-attr]
            get_state().db.engine.dispose()  # type: ignore[union-attr]
        app.extensions["havn"].close()
    one, four = statistics.median(times[1]), statistics.median(times[4])
    print(f"{'drain ' + format(count, ',') + ' at +20 ms, ' + label:<44} x4 {four * 1e3:7.2f} ms/payment   "
          f"x1 {one * 1e3:7.2f} ms/payment   speed-up {one / four:5.2f}×   goal ≥ 3×")


def run(quick: bool, postgres_url: Optional[str] = None) -> None:
    count, rounds = (200, 1) if quick else (2_000, 3)
    proc, url = _start_sandbox()
    try:
        with tempfile.TemporaryDirectory() as folder:
            _measure(f"sqlite:///{folder}/drain.sqlite", url, count, rounds, "SQLite")
        postgres_url = postgres_url or os.environ.get("HAVN_TEST_POSTGRES_URL")
        if postgres_url:
            _measure(postgres_url, url, count, rounds, "PostgreSQL")
        else:
            print("drain on PostgreSQL: skipped (set HAVN_TEST_POSTGRES_URL, see .ci/postgres.sh)")
    finally:
        _stop_sandbox(proc)


if __name__ == "__main__":
    run("--quick" in sys.argv)

"""Delivery through Celery against the built-in worker, at the same concurrency.

Both drain the same outbox — ``--quick``: 200 payments, otherwise 2,000 —
recorded on PostgreSQL, to the sandbox over HTTP with 20 ms added to every
answer: ours is one Celery worker with 4 prefork processes
(``HAVN_DELIVERY = "celery"``, a task per payment enqueued on Redis), the
baseline ``flask havn deliver``'s pass with 4 threads. Rounds alternate
between the two; each side's best round is printed. Needs
``HAVN_TEST_REDIS_URL`` and ``HAVN_TEST_POSTGRES_URL`` (``.ci/redis.sh``,
``.ci/postgres.sh``); without them it prints why and skips.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN
from flask_havn.config import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET
from flask_havn.sandbox import SandboxServer
from flask_havn.state import get_state

from ._outbox_rows import add_payments, add_project

CONCURRENCY = 4
LATENCY = 0.020
ROOT = Path(__file__).resolve().parent.parent
UNLIMITED = {name: 1_000_000 for name in ("transaction", "user_sync", "voucher_validate", "vouchers", "login")}


def _settings(server_url: str, database: str, queue: str) -> Dict[str, Any]:
    return {"SQLALCHEMY_DATABASE_URI": database, "HAVN_BASE_URL": server_url, "HAVN_API_KEY": SANDBOX_API_KEY,
            "HAVN_WEBHOOK_SECRET": SANDBOX_WEBHOOK_SECRET, "HAVN_DELIVERY": "celery", "HAVN_QUEUE_NAME": queue,
            "HAVN_MAX_RETRIES": 0, "HAVN_TIMEOUT": 10}


def _fill(app: Flask, count: int) -> List[int]:
    """A fresh outbox of ``count`` completed, undelivered payments; their ids."""
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        db.drop_all()
        db.create_all()
        add_project(db.session)
        tag = uuid.uuid4().hex[:8]
        add_payments(db.session, (f"bench-{tag}-{n}" for n in range(count)))
        db.session.commit()
        return [int(i) for i in db.session.execute(sa.text("SELECT id FROM havn_payments ORDER BY id")).scalars()]


def _sent(app: Flask) -> int:
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        count = db.session.execute(sa.text("SELECT count(*) FROM havn_payments WHERE delivery_state = 'sent'")).scalar()
        db.session.rollback()
        return int(count or 0)


def _through_celery(app: Flask, count: int) -> float:
    """Seconds from the first task enqueued until every payment is sent, by the running Celery worker."""
    ids = _fill(app, count)
    started = time.perf_counter()
    with app.app_context():
        queue = get_state().queue
        for payment_id in ids:
            queue.enqueue(payment_id)  # what the after-commit hook sends for each recorded payment
    deadline = time.monotonic() + 600
    while _sent(app) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("the Celery worker did not drain the outbox within 10 minutes")
        time.sleep(0.05)
    return time.perf_counter() - started


def _built_in(app: Flask, count: int) -> float:
    """Seconds for the built-in worker's passes (4 threads) to send every payment."""
    _fill(app, count)
    started = time.perf_counter()
    with app.app_context():
        outbox = get_state().outbox
        while outbox.count_due():
            outbox.deliver_due(concurrency=CONCURRENCY)
    elapsed = time.perf_counter() - started
    assert _sent(app) == count
    return elapsed


def _worker(settings: Dict[str, Any], broker: str, log: Path) -> "subprocess.Popen[bytes]":
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAVN_")}
    env.update(BENCH_HOST_CONFIG=json.dumps(settings), BENCH_BROKER_URL=broker,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    argv = [sys.executable, "-m", "celery", "-A", "bench._celery_host:celery_app", "worker", "--pool=prefork",
            f"--concurrency={CONCURRENCY}", "-Q", settings["HAVN_QUEUE_NAME"], "--without-heartbeat",
            "--without-mingle", "--without-gossip", "-l", "warning", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h"]
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def run(quick: bool, *, redis_url: Optional[str] = None, database: Optional[str] = None,
        count: Optional[int] = None, rounds: Optional[int] = None) -> None:
    """Print the figure; ``count``/``rounds`` override the mode's (the smoke test runs a few payments)."""
    name = "queue: drain via Celery x4 vs built-in x4"
    redis_url = redis_url or os.environ.get("HAVN_TEST_REDIS_URL")
    database = database or os.environ.get("HAVN_TEST_POSTGRES_URL")
    if not redis_url or not database:
        print(f"{name:<44} skipped: needs HAVN_TEST_REDIS_URL and HAVN_TEST_POSTGRES_URL (.ci/redis.sh, "
              ".ci/postgres.sh)")
        return
    count, rounds = (count or 200, rounds or 1) if quick else (count or 2_000, rounds or 2)
    from celery import Celery

    with SandboxServer(config={"HAVN_SANDBOX_SEED": 3, "HAVN_SANDBOX_RATE_LIMITS": UNLIMITED}) as server, \
            tempfile.TemporaryDirectory() as folder:
        server.state.faults.configure({"latency": LATENCY})
        settings = _settings(server.url, database, f"havn-bench-{uuid.uuid4().hex[:8]}")
        app = Flask("bench_queue")
        app.config.update(settings)
        havn = HAVN(app, db=SQLAlchemy(app), routes=False)
        celery_app = Celery("bench_queue", broker=redis_url, set_as_current=False)
        havn.init_celery(celery_app, app, sweep_every=None)
        worker = _worker(settings, redis_url, Path(folder) / "celery.log")
        try:
            ours: List[float] = []
            baseline: List[float] = []
            _through_celery(app, 20)  # warm-up, not timed: the worker's processes start and connect
            _built_in(app, 20)
            sides: List[Callable[[], None]] = [lambda: baseline.append(_built_in(app, count)),
                                               lambda: ours.append(_through_celery(app, count))]
            for _ in range(rounds):
                for side in sides:
                    side()
        finally:
            worker.kill()
            worker.wait(timeout=30)
            celery_app.close()
            get_state(app).close()
            with app.app_context():
                app.extensions["sqlalchemy"].drop_all()
                app.extensions["sqlalchemy"].engine.dispose()
        best, base = min(ours), min(baseline)
        floor = count * LATENCY / CONCURRENCY
        print(f"{name + ' (' + format(count, ',') + ')':<44} ours {best:7.2f} s   built-in {base:7.2f} s   "
              f"ratio {best / base:5.2f}   goal ≤ 1.5 (both above the latency floor of {floor:.1f} s)")


if __name__ == "__main__":
    run("--quick" in sys.argv[1:])

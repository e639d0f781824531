"""Two workers at once never send one payment twice: threads on SQLite, processes on PostgreSQL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from flask_havn import delivery
from flask_havn.outbox.attempt import attempt
from flask_havn.state import get_state
from flask_havn.outbox.claims import DuePass
from flask_havn.sandbox import SandboxServer, create_app

from _projects_helpers import UNLIMITED, TransactionCounter, by_gateway_id, dump, fast_sqlite, http_config, \
    record_many, synced_chain

#: Read at import: the suite's autouse fixture removes HAVN_* variables from the environment of each test.
POSTGRES_URL: Optional[str] = os.environ.get("HAVN_TEST_POSTGRES_URL")
COUNT = 500


@pytest.fixture(scope="module")
def counted() -> Iterator[Tuple[SandboxServer, TransactionCounter]]:
    """A sandbox over real HTTP, behind a counter of the transaction requests that reach it."""
    app = create_app({"HAVN_SANDBOX_SEED": 9, "HAVN_SANDBOX_RATE_LIMITS": UNLIMITED})
    counter = TransactionCounter(app.wsgi_app)
    app.wsgi_app = counter  # type: ignore[method-assign]
    with SandboxServer(app) as server:
        yield server, counter


def _assert_each_sent_exactly_once(host: Any, server: SandboxServer, counter: TransactionCounter,
                                   prefix: str) -> None:
    expected = {f"{prefix}-{n}" for n in range(COUNT)}
    # Requests that reached HAVN: one per payment (HAVN's idempotency would hide a second one, so count them).
    assert {gid: n for gid, n in counter.counts.items() if gid in expected} == {gid: 1 for gid in expected}
    transactions = [t for t in dump(server)["transactions"] if t["payment_gateway_transaction_id"] in expected]
    assert len(transactions) == COUNT
    assert all(len(rows) == 1 for rows in by_gateway_id(transactions).values())
    with host.app.app_context():
        rows = host.havn.models.Payment.query.all()
        assert Counter((r.delivery_state, r.attempts) for r in rows) == Counter({("sent", 1): COUNT})
        assert {r.havn_transaction_id for r in rows} == {t["transaction_id"] for t in transactions}


def test_two_threads_on_sqlite(make_host: Any, counted: Tuple[SandboxServer, TransactionCounter]) -> None:
    server, counter = counted
    server.reset()
    counter.counts.clear()
    host = fast_sqlite(make_host(http_config(server.url, HAVN_DELIVERY="worker", HAVN_MAX_RETRIES=0)))
    _, _, b_id, _ = synced_chain(host)
    record_many(host, b_id, COUNT, prefix="sqlite")

    start = threading.Barrier(2)
    results: List[Dict[str, int]] = [{}, {}]
    errors: List[BaseException] = []

    def worker(slot: int) -> None:
        try:
            with host.app.app_context():
                start.wait()
                results[slot] = delivery.deliver_due()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results[0]["sent"] + results[1]["sent"] == COUNT
    assert results[0]["sent"] > 0 and results[1]["sent"] > 0  # both really worked at the same time
    _assert_each_sent_exactly_once(host, server, counter, "sqlite")


needs_postgres = pytest.mark.skipif(
    POSTGRES_URL is None,
    reason="PostgreSQL not configured: run `eval \"$(.ci/postgres.sh)\"` (installs and starts a local PostgreSQL, "
           "exports HAVN_TEST_POSTGRES_URL) and pip install psycopg2-binary (the postgres extra)")


@needs_postgres
def test_claims_by_id_on_postgresql(make_host: Any, counted: Tuple[SandboxServer, TransactionCounter]) -> None:
    server, _ = counted
    server.reset()
    host = make_host({**http_config(server.url, HAVN_DELIVERY="worker", HAVN_MAX_RETRIES=0),
                      "SQLALCHEMY_DATABASE_URI": POSTGRES_URL})
    with host.app.app_context():
        host.db.drop_all()
        host.db.create_all()
    try:
        _, _, b_id, _ = synced_chain(host)
        (payment_id,) = record_many(host, b_id, 1, prefix="pg-by-id")
        with host.app.app_context():
            assert delivery.claim(payment_id, worker_id="one") is True
            assert delivery.claim(payment_id, worker_id="two") is False
            assert DuePass(get_state()).claim_next(get_state(), "two") is None
            assert delivery.deliver(payment_id).delivery_state == "sending"  # held by "one"
            row = attempt(get_state(), payment_id, "one").payment
            assert (row.delivery_state, row.attempts, row.claimed_by) == ("sent", 1, None)
    finally:
        with host.app.app_context():
            host.db.session.remove()
            host.db.drop_all()


@needs_postgres
def test_two_processes_on_postgresql(make_host: Any, counted: Tuple[SandboxServer, TransactionCounter]) -> None:
    server, counter = counted
    server.reset()
    counter.counts.clear()
    host = make_host({**http_config(server.url, HAVN_DELIVERY="worker", HAVN_MAX_RETRIES=0),
                      "SQLALCHEMY_DATABASE_URI": POSTGRES_URL})
    with host.app.app_context():
        assert host.db.engine.dialect.name == "postgresql"
        host.db.drop_all()  # leftovers of an interrupted run
        host.db.create_all()
    try:
        _, _, b_id, _ = synced_chain(host)
        record_many(host, b_id, COUNT, prefix="pg")
        env = dict(os.environ, HAVN_TEST_POSTGRES_URL=str(POSTGRES_URL), WORKER_SANDBOX_URL=server.url)
        script = str(Path(__file__).with_name("_pg_worker.py"))
        workers = [subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
        try:
            for proc in workers:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            for proc in workers:  # both are waiting: start them together
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            outputs = [proc.communicate(timeout=300) for proc in workers]
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        for proc, (out, err) in zip(workers, outputs):
            assert proc.returncode == 0, err
        counts = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
        assert counts[0]["sent"] + counts[1]["sent"] == COUNT
        assert counts[0]["sent"] > 0 and counts[1]["sent"] > 0
        _assert_each_sent_exactly_once(host, server, counter, "pg")
    finally:
        with host.app.app_context():
            host.db.session.remove()
            host.db.drop_all()

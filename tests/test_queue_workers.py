"""Real Celery and RQ workers deliver through a real Redis: exactly once under faults and a SIGKILL.

The host app records 300 payments on PostgreSQL (``havn.payments.record``:
each task is enqueued after its commit); a real worker process sends them to
the sandbox over HTTP with 5xx, 429 and stored-then-dropped faults on, is
killed with SIGKILL mid-run and started again. No eager mode, no fake Redis.
"""
from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import sqlalchemy as sa

from flask_havn.sandbox import SandboxServer

from _projects_helpers import UNLIMITED, by_gateway_id, dump, http_config, synced_chain
from _queue_helpers import (POSTGRES_URL, REDIS_URL, WorkerProcess, celery_worker, forget_queue, needs_postgres,
                            needs_redis, rq_worker, unique_queue, wait_for)
from _queue_host import celery_for

COUNT = 300
#: 5xx, 429 and stored-then-dropped answers, as in tests/test_delivery_faults.py.
FAULTS = {"seed": 20261203, "rates": {"500": 0.06, "502": 0.06, "503": 0.06, "429": 0.06, "drop": 0.08}}
#: Seconds between two sweeps in these tests (production: a minute).
SWEEP_EVERY = 0.5

pytestmark = [needs_redis, needs_postgres]


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    """A sandbox over real HTTP whose own rate limiter never interferes (faults inject the 429s)."""
    with SandboxServer(config={"HAVN_SANDBOX_SEED": 12, "HAVN_SANDBOX_RATE_LIMITS": UNLIMITED}) as running:
        yield running


def host_config(server: SandboxServer, engine: str, queue: str) -> Dict[str, Any]:
    """Settings shared by the web side and the worker processes: PostgreSQL, the sandbox, the queue."""
    return {
        **http_config(server.url),
        "SQLALCHEMY_DATABASE_URI": POSTGRES_URL,
        "HAVN_DELIVERY": engine,
        "HAVN_QUEUE_NAME": queue,
        "HAVN_RQ_URL": REDIS_URL,
        # One try per attempt, short waits: retries are the queue's, with the outbox's backoff.
        "HAVN_MAX_RETRIES": 0, "HAVN_BACKOFF_FACTOR": 0, "HAVN_TIMEOUT": 2,
        "HAVN_DELIVERY_BACKOFF": 0.05, "HAVN_DELIVERY_MAX_BACKOFF": 0.2, "HAVN_DELIVERY_MAX_ATTEMPTS": 60,
        # A killed worker's claims are free again after 3 s; the sweep re-enqueues what has been due for 1 s.
        "HAVN_DELIVERY_LEASE": 3, "HAVN_QUEUE_SWEEP_GRACE": 1,
    }


def start_worker(engine: str, config: Dict[str, Any], log: Path) -> WorkerProcess:
    if engine == "celery":
        return celery_worker(config, str(REDIS_URL), log, sweep_every=SWEEP_EVERY)
    return rq_worker(config, log, sweep_every=SWEEP_EVERY, simple=True)


def count_by_state(host: Any) -> Counter:
    with host.app.app_context():
        Payment = host.havn.models.Payment
        rows = host.db.session.execute(sa.select(Payment.delivery_state, sa.func.count())
                                       .group_by(Payment.delivery_state)).all()
        host.db.session.rollback()
        return Counter({state: int(n) for state, n in rows})


@pytest.mark.parametrize("engine", ["celery", "rq"])
def test_300_payments_exactly_once_through_a_worker_killed_mid_run(make_host: Any, server: SandboxServer,
                                                                  tmp_path: Path, engine: str) -> None:
    server.reset()
    queue = unique_queue(engine)
    config = host_config(server, engine, queue)
    host = make_host(config)
    with host.app.app_context():
        assert host.db.engine.dialect.name == "postgresql"
        host.db.drop_all()  # leftovers of an interrupted run
        host.db.create_all()
    workers: List[WorkerProcess] = []
    try:
        if engine == "celery":
            celery_app = celery_for(host.app, host.havn, str(REDIS_URL), sweep_every=SWEEP_EVERY)
        _, a_code, b_id, _ = synced_chain(host)
        server.state.faults.configure(FAULTS)
        workers.append(start_worker(engine, config, tmp_path / f"{engine}-1.log"))

        prefix = f"pi_{engine}_{uuid.uuid4().hex[:6]}"
        with host.app.app_context():
            for n in range(COUNT):
                host.havn.payments.record(
                    b_id, 1000 + n, "USD", customer_email=f"buyer{n}@example.com", payment_gateway="STRIPE",
                    payment_gateway_transaction_id=f"{prefix}_{n}")

        # SIGKILL the worker (and its children) mid-run, then start a new one.
        wait_for(lambda: count_by_state(host)["sent"] >= 100, seconds=120, what="100 payments sent",
                 processes=workers)
        workers[0].kill()
        at_kill = count_by_state(host)
        assert at_kill["sent"] < COUNT, "the worker finished before it could be killed: nothing was tested"
        workers.append(start_worker(engine, config, tmp_path / f"{engine}-2.log"))
        wait_for(lambda: count_by_state(host)["sent"] == COUNT, seconds=120, what=f"all {COUNT} payments sent",
                 processes=workers)

        stats = server.state.faults.stats()
        for kind in ("500", "502", "503", "429", "drop"):
            assert stats.get(kind, 0) > 0, stats  # every fault kind really happened
        server.state.faults.clear()

        transactions = [t for t in dump(server)["transactions"]
                        if t["payment_gateway_transaction_id"].startswith(prefix + "_")]
        grouped = by_gateway_id(transactions)
        assert len(transactions) == COUNT
        assert sorted(grouped) == sorted(f"{prefix}_{n}" for n in range(COUNT))
        assert all(len(rows) == 1 for rows in grouped.values())
        assert {t["referral_code"] for t in transactions} == {a_code}
        with host.app.app_context():
            rows = host.havn.models.Payment.query.all()
            assert Counter(r.delivery_state for r in rows) == Counter({"sent": COUNT})
            assert {r.payment_gateway_transaction_id: r.havn_transaction_id for r in rows} == \
                {t["payment_gateway_transaction_id"]: t["transaction_id"] for t in transactions}
            assert max(r.attempts for r in rows) > 1  # faults made the queue retry
            assert all(r.claimed_by is None and r.next_attempt_at is None for r in rows)  # nothing stuck
    finally:
        for worker in workers:
            worker.kill()
        server.state.faults.clear()
        if engine == "celery":
            celery_app.close()
        forget_queue(str(REDIS_URL), queue)
        with host.app.app_context():
            host.db.session.remove()
            host.db.drop_all()

"""Handing payments to Celery or RQ: after the commit only, what a task does next, the sweep, the set-up errors.

The queue tests use the real Redis of ``.ci/redis.sh`` (each test its own
queue name) and read what really sits in it; the broker-outage test runs a
redis-server of its own that it can take down and bring back.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import sqlalchemy as sa

from flask_havn.config import HAVNConfig
from flask_havn.errors import HAVNConfigError
from flask_havn.models import utcnow
from flask_havn.outbox.claims import claim, lease_seconds
from flask_havn.sandbox import SandboxServer
from flask_havn.state import get_state

from _projects_helpers import UNLIMITED, by_gateway_id, dump, fast_sqlite, http_config, quiet, sandbox_of, \
    synced_chain
from _queue_helpers import REDIS_URL, PrivateRedis, celery_worker, forget_queue, needs_redis, queued_payment_ids, \
    rq_worker, unique_queue, wait_for
from _queue_host import celery_for

ENGINES = ["celery", "rq"]


def _payment(host: Any, project_id: int, gateway_id: str) -> Any:
    """A completed payment row added to the session (not flushed), as a host might write one itself."""
    return host.havn.models.Payment(
        project_id=project_id, amount=1000, currency="USD", status="completed", customer_email="c@example.com",
        payment_gateway="STRIPE", payment_gateway_transaction_id=gateway_id, delivery_state="pending", attempts=0)


@pytest.fixture
def queued_host(make_host: Any) -> Iterator[Any]:
    """``make(engine, **config)``: a host on SQLite delivering through ``engine`` on its own queue of the test Redis."""
    made: List[Tuple[Any, str, Any]] = []

    def make(engine: str, **config: Any) -> Any:
        queue = unique_queue(engine)
        host = quiet(make_host)({"HAVN_DELIVERY": engine, "HAVN_QUEUE_NAME": queue, "HAVN_RQ_URL": REDIS_URL,
                                 **config})
        celery_app = celery_for(host.app, host.havn, str(REDIS_URL), sweep_every=None) if engine == "celery" else None
        host.queue_name = queue
        made.append((host, queue, celery_app))
        return host

    yield make
    for _host, queue, celery_app in made:
        if celery_app is not None:
            celery_app.close()
        forget_queue(str(REDIS_URL), queue)


def queued(engine: str, host: Any) -> List[int]:
    return queued_payment_ids(engine, str(REDIS_URL), host.queue_name)


def with_project(queued_host: Any, engine: str, **config: Any) -> Tuple[Any, int]:
    """A queued host and the id of a synced project that has an upline (the guide's project B)."""
    host = queued_host(engine, **config)
    return host, synced_chain(host)[2]


# -- after the commit, never before --------------------------------------------------------------------------


@needs_redis
@pytest.mark.parametrize("engine", ENGINES)
def test_a_payment_whose_transaction_rolls_back_enqueues_nothing(queued_host: Any, engine: str) -> None:
    host, b_id = with_project(queued_host, engine)
    with host.app.app_context():
        session = host.db.session
        payment = _payment(host, b_id, "pi_rolled_back")
        session.add(payment)
        host.havn.outbox.schedule(payment)  # flushed for its id, then waits for the commit
        assert payment.id is not None
        assert queued(engine, host) == []
        session.rollback()
        assert host.havn.models.Payment.query.filter_by(payment_gateway_transaction_id="pi_rolled_back").count() == 0
        assert queued(engine, host) == []

        # A savepoint released inside the transaction is no commit: still nothing until the real one.
        with session.begin_nested():
            payment = _payment(host, b_id, "pi_in_savepoint")
            session.add(payment)
            host.havn.outbox.schedule(payment)
        assert queued(engine, host) == []
        session.rollback()
        assert queued(engine, host) == []

        # The same payment committed: its one task goes at the commit.
        payment = _payment(host, b_id, "pi_committed")
        session.add(payment)
        host.havn.outbox.schedule(payment)
        assert queued(engine, host) == []
        session.commit()
        committed_id = payment.id
        assert queued(engine, host) == [committed_id]

        # record() commits itself: its task is enqueued at once, and nothing is sent in the request.
        recorded = host.havn.payments.record(b_id, 2500, customer_email="d@example.com")
        assert recorded.delivery_state == "pending"
        assert queued(engine, host) == [committed_id, recorded.id]
        # A later rollback of the request's (read-only) transaction takes nothing back.
        session.rollback()
        assert queued(engine, host) == [committed_id, recorded.id]


@needs_redis
@pytest.mark.parametrize("engine", ENGINES)
def test_complete_and_retry_enqueue_too(queued_host: Any, engine: str) -> None:
    host, b_id = with_project(queued_host, engine)
    with host.app.app_context():
        waiting = host.havn.payments.record(b_id, 1500, customer_email="e@example.com", status="pending")
        assert queued(engine, host) == []  # not completed: nothing to deliver
        host.havn.payments.complete(waiting)
        assert queued(engine, host) == [waiting.id]
        Payment = host.havn.models.Payment
        host.db.session.execute(sa.update(Payment).where(Payment.id == waiting.id).values(delivery_state="dead"))
        host.db.session.commit()
        host.havn.payments.retry(waiting.id)
        assert queued(engine, host) == [waiting.id, waiting.id]


# -- the broker down at commit time -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(config={"HAVN_SANDBOX_SEED": 31, "HAVN_SANDBOX_RATE_LIMITS": UNLIMITED}) as running:
        yield running


@needs_redis
@pytest.mark.parametrize("engine", ENGINES)
def test_the_broker_down_at_commit_loses_nothing(make_host: Any, server: SandboxServer, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture, engine: str) -> None:
    broker = PrivateRedis(tmp_path, password="s3cret-broker-pw")
    queue = unique_queue(engine)
    config: Dict[str, Any] = {
        **http_config(server.url), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/outage.sqlite",
        "HAVN_DELIVERY": engine, "HAVN_QUEUE_NAME": queue, "HAVN_RQ_URL": broker.url, "HAVN_MAX_RETRIES": 0,
        "HAVN_TIMEOUT": 5, "HAVN_QUEUE_SWEEP_GRACE": 0}
    host = fast_sqlite(make_host(config))
    celery_app = celery_for(host.app, host.havn, broker.url, sweep_every=None) if engine == "celery" else None
    worker = None
    try:
        _, _, b_id, _ = synced_chain(host)
        gateway_id = f"pi_outage_{engine}"
        with host.app.app_context(), caplog.at_level(logging.WARNING, logger="flask_havn.delivery"):
            payment = host.havn.payments.record(b_id, 4200, customer_email="f@example.com", payment_gateway="STRIPE",
                                                payment_gateway_transaction_id=gateway_id)  # never raises
            payment_id = payment.id
            assert payment.delivery_state == "pending"
        assert "could not enqueue the delivery of payment" in caplog.text and "sweep" in caplog.text
        assert broker.password not in caplog.text

        broker.start()  # the broker is back
        assert queued_payment_ids(engine, broker.url, queue) == []  # the task really was lost
        with host.app.app_context():
            assert host.havn.outbox.sweep() == 1
        assert queued_payment_ids(engine, broker.url, queue) == [payment_id]

        log = tmp_path / f"{engine}-worker.log"
        if engine == "rq":
            worker = rq_worker(config, log, burst=True)  # RQ's default forking worker, until the queue is empty
            assert worker.wait(120) == 0, worker.log_tail()
        else:
            worker = celery_worker(config, broker.url, log, sweep_every=0)
        with host.app.app_context():
            def sent() -> bool:
                row = host.havn.payments.get(payment_id)
                host.db.session.refresh(row)
                return bool(row.delivery_state == "sent")
            wait_for(sent, seconds=60, what="the swept payment sent", processes=[worker])
            row = host.havn.payments.get(payment_id)
            transactions = by_gateway_id(dump(server)["transactions"])[gateway_id]
            assert len(transactions) == 1
            assert row.havn_transaction_id == transactions[0]["transaction_id"]
    finally:
        if worker is not None:
            worker.kill()
        if celery_app is not None:
            celery_app.close()
        broker.stop()


# -- what a task does next (no queue needed) ------------------------------------------------------------------


def test_what_a_task_does_after_each_outcome(make_host: Any) -> None:
    host = quiet(make_host)({"HAVN_DELIVERY": "worker", "HAVN_MAX_RETRIES": 0, "HAVN_DELIVERY_BACKOFF": 40,
                             "HAVN_DELIVERY_MAX_ATTEMPTS": 2})
    _, _, b_id, _ = synced_chain(host)
    faults = sandbox_of(host).faults
    with host.app.app_context():
        outbox = host.havn.outbox
        record = host.havn.payments.record
        state = get_state()
        lease = lease_seconds(state.config)

        sent = record(b_id, 1000, customer_email="a@example.com")
        assert outbox.run_task(sent.id) is None  # delivered: done
        assert host.havn.payments.get(sent.id).delivery_state == "sent"
        assert outbox.run_task(sent.id) is None  # a duplicate task ends at once

        failing = record(b_id, 1100, customer_email="b@example.com")
        faults.configure({"rates": {"503": 1.0}})
        now = utcnow()
        assert outbox.run_task(failing.id, now=now) == pytest.approx(40.0)  # again at next_attempt_at
        assert outbox.run_task(failing.id, now=now + timedelta(seconds=10)) == pytest.approx(30.0)  # not due yet
        assert outbox.run_task(failing.id, now=now + timedelta(seconds=41)) is None  # second failure: dead
        faults.clear()
        assert host.havn.payments.get(failing.id).delivery_state == "dead"

        held = record(b_id, 1200, customer_email="c@example.com")
        assert claim(state, held.id, worker_id="another-task", now=now)
        # Another task holds it: look again when its lease would have run out.
        assert outbox.run_task(held.id, now=now + timedelta(seconds=5)) == pytest.approx(lease - 5)

        unpaid = record(b_id, 1300, customer_email="d@example.com", status="pending")
        assert outbox.run_task(unpaid.id) is None  # not completed: nothing to deliver
        assert outbox.run_task(999_999) is None  # no such payment (its transaction never committed)


# -- the sweep ----------------------------------------------------------------------------------------------


@needs_redis
def test_the_sweep_enqueues_what_has_been_due_too_long_once_the_queue_is_idle(queued_host: Any) -> None:
    host, b_id = with_project(queued_host, "rq", HAVN_QUEUE_SWEEP_GRACE=60, HAVN_DELIVERY_LEASE=200)
    with host.app.app_context():
        Payment = host.havn.models.Payment
        session = host.db.session
        now = utcnow()
        rows = {name: _payment(host, b_id, f"pi_sweep_{name}") for name in
                ("lost", "recent", "retry_later", "sent", "abandoned", "held")}
        session.add_all(rows.values())
        session.commit()  # schedule() was never called: no task for any of them
        ids = {name: row.id for name, row in rows.items()}
        long_ago = now - timedelta(minutes=10)
        changes = {
            "lost": {"updated_at": long_ago},
            "recent": {"updated_at": now - timedelta(seconds=30)},
            "retry_later": {"updated_at": long_ago, "delivery_state": "failed",
                            "next_attempt_at": now + timedelta(seconds=30)},
            "sent": {"updated_at": long_ago, "delivery_state": "sent"},
            "abandoned": {"updated_at": long_ago, "delivery_state": "sending", "claimed_by": "dead-worker",
                          "claimed_at": long_ago},
            "held": {"updated_at": now - timedelta(seconds=100), "delivery_state": "sending",
                     "claimed_by": "live-worker", "claimed_at": now - timedelta(seconds=100)},
        }
        for name, values in changes.items():
            session.execute(sa.update(Payment).where(Payment.id == ids[name]).values(**values))
        session.commit()

        assert host.havn.outbox.sweep(now=now) == 2
        assert sorted(queued("rq", host)) == sorted([ids["lost"], ids["abandoned"]])
        # Tasks wait in the queue: the next sweep leaves everything alone, even when forced into it later.
        assert host.havn.outbox.sweep(now=now + timedelta(minutes=5)) == 0
        # Forced: the two it marked are left alone for a grace period, then enqueued again (with "recent", due
        # for long by then; "held" is still within its lease, "retry_later" waited for its own time).
        assert host.havn.outbox.sweep(now=now + timedelta(seconds=20), force=True) == 0
        assert host.havn.outbox.sweep(now=now + timedelta(seconds=61), force=True) == 3

        result = host.app.test_cli_runner().invoke(args=["havn", "sweep", "--force"])
        assert result.exit_code == 0, result.output
        assert "Enqueued 0 due payment(s)" in result.output  # just marked: within the grace period
        status = host.app.test_cli_runner().invoke(args=["havn", "status"])
        assert status.exit_code == 0, status.output
        assert f"queue: rq {host.queue_name!r}, 5 task(s) waiting to start" in status.output


# -- set-up errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_missing_extra_names_the_pip_line(engine: str) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.modules[{engine!r}] = None  # what an environment without the extra looks like to an import
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from flask_havn import HAVN
        from flask_havn.errors import HAVNConfigError
        app = Flask("x")
        app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", HAVN_SANDBOX=True, HAVN_DELIVERY={engine!r})
        try:
            HAVN(app, db=SQLAlchemy(app))
        except HAVNConfigError as exc:
            print(exc.message)
        else:
            print("no error")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f'pip install "flask-havn[{engine}]"' in out.stdout
    assert f'HAVN_DELIVERY = "{engine}"' in out.stdout


def test_celery_delivery_without_a_bound_celery_app_says_how(make_host: Any) -> None:
    host = quiet(make_host)({"HAVN_DELIVERY": "celery"})
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        with pytest.raises(HAVNConfigError, match=r"havn\.init_celery\(celery_app, app\)"):
            host.havn.payments.record(b_id, 1000, customer_email="a@example.com", payment_gateway_transaction_id="g1")
        # The payment itself was committed before: the sweep delivers it once Celery is bound.
        assert host.havn.payments.list()[1] == 1


def test_binding_a_queue_needs_the_matching_delivery_mode(make_host: Any) -> None:
    from celery import Celery
    from redis import Redis
    from rq import Queue

    worker_host = quiet(make_host)({"HAVN_DELIVERY": "worker"})
    with pytest.raises(HAVNConfigError, match='HAVN_DELIVERY = "celery"'):
        worker_host.havn.init_celery(Celery("x", set_as_current=False), worker_host.app)
    celery_host = quiet(make_host)({"HAVN_DELIVERY": "celery"})
    with pytest.raises(HAVNConfigError, match='HAVN_DELIVERY = "rq"'):
        celery_host.havn.init_rq(Queue("x", connection=Redis.from_url("redis://127.0.0.1:1/0")), celery_host.app)
    with pytest.raises(HAVNConfigError, match="pass the Flask app"):
        celery_host.havn.init_celery(Celery("y", set_as_current=False))


def test_one_celery_app_serves_one_flask_app(make_host: Any) -> None:
    from celery import Celery

    celery_app = Celery("shared", set_as_current=False)
    first = quiet(make_host)({"HAVN_DELIVERY": "celery"})
    second = quiet(make_host)({"HAVN_DELIVERY": "celery"})
    bound = first.havn.init_celery(celery_app, first.app, sweep_every=30)
    assert first.havn.init_celery(celery_app, first.app) is bound  # idempotent
    assert celery_app.conf.beat_schedule["flask-havn-sweep"]["schedule"] == 30.0
    with pytest.raises(HAVNConfigError, match="already delivers for the Flask app"):
        second.havn.init_celery(celery_app, second.app)
    celery_app.close()


def test_an_rq_job_outside_the_worker_says_how_to_run_it() -> None:
    from flask_havn.queues.rq import deliver_job

    with pytest.raises(HAVNConfigError, match="flask --app yourapp havn rq-worker"):
        deliver_job(1)


def test_rq_worker_command_refuses_another_delivery_mode(make_host: Any) -> None:
    host = quiet(make_host)({"HAVN_DELIVERY": "worker"})
    result = host.app.test_cli_runner().invoke(args=["havn", "rq-worker", "--burst"])
    assert result.exit_code != 0
    assert 'set HAVN_DELIVERY = "rq"' in result.output


def test_queue_settings_are_checked_and_the_redis_password_stays_hidden(make_host: Any) -> None:
    url = "redis://:hunter2-redis@127.0.0.1:6379/3"
    config = HAVNConfig.from_app_config({"HAVN_RQ_URL": url, "HAVN_DELIVERY_LEASE": "200",
                                         "HAVN_QUEUE_NAME": " payments.havn "}, environ={})
    assert (config.rq_url, config.delivery_lease, config.queue_name) == (url, 200.0, "payments.havn")
    assert lease_seconds(config) == 200.0
    assert "hunter2" not in repr(config)
    with pytest.raises(HAVNConfigError) as bad_url:
        HAVNConfig.from_app_config({"HAVN_RQ_URL": "http://:hunter2@x"}, environ={})
    assert "hunter2" not in bad_url.value.message and "HAVN_RQ_URL" in bad_url.value.message
    with pytest.raises(HAVNConfigError, match="HAVN_QUEUE_NAME"):
        HAVNConfig.from_app_config({"HAVN_QUEUE_NAME": "two words"}, environ={})
    with pytest.raises(HAVNConfigError, match=r"HAVN_DELIVERY_LEASE = 5 is shorter than one delivery's HTTP call"):
        HAVNConfig.from_app_config({"HAVN_DELIVERY_LEASE": 5, "HAVN_TIMEOUT": 10, "HAVN_MAX_RETRIES": 0}, environ={})
    with pytest.raises(HAVNConfigError, match=r"\(62 s with HAVN_TIMEOUT"):  # retries wait too: up to 60 s in all
        HAVNConfig.from_app_config({"HAVN_DELIVERY_LEASE": 61, "HAVN_TIMEOUT": 1, "HAVN_MAX_RETRIES": 1}, environ={})
    assert HAVNConfig.from_app_config({"HAVN_DELIVERY_LEASE": 3, "HAVN_TIMEOUT": 2, "HAVN_MAX_RETRIES": 0},
                                      environ={}).delivery_lease == 3.0
    host = quiet(make_host)({"HAVN_DELIVERY": "rq", "HAVN_RQ_URL": url})
    queue = host.app.extensions["havn"].queue
    assert queue.name == "havn" and "hunter2" not in repr(queue)

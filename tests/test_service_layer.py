"""The service layer's seams: each test reproduces a defect the 0.1 middle let through (issue 10)."""
from __future__ import annotations

import logging
import threading
from typing import Any, List

import pytest
import sqlalchemy as sa

from flask_havn import signals
from flask_havn.errors import HAVNConflictError, HAVNRecordNotFoundError, HAVNValidationError
from flask_havn.models import utcnow
from flask_havn.outbox.attempt import attempt
from flask_havn.outbox.claims import claim
from flask_havn.state import get_state

from _projects_helpers import FAST_RETRY, dump, quiet, record_many, sandbox_of, synced_chain


def _worker_host(make_host: Any, **config: Any) -> Any:
    return quiet(make_host)({"HAVN_DELIVERY": "worker", **FAST_RETRY, **config})


def _state_of(host: Any, payment_id: int) -> str:
    with host.app.app_context():
        return host.db.session.execute(sa.text("SELECT delivery_state FROM havn_payments WHERE id = :i"),
                                       {"i": payment_id}).scalar_one()


# -- 1. a duplicate gateway id undoes only the payment's insert -------------------------------

def test_a_racing_duplicate_keeps_the_hosts_own_pending_rows_and_says_so(make_host: Any) -> None:
    host = _worker_host(make_host)
    db = host.db

    class HostOrder(db.Model):  # type: ignore[name-defined]
        __tablename__ = "host_orders"
        id = sa.Column(sa.Integer, primary_key=True)
        note = sa.Column(sa.String(50), nullable=False)

    with host.app.app_context():
        db.create_all()
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        now = utcnow()

        def another_request_records_it_first(session: Any, context: Any, instances: Any) -> None:
            with db.engine.begin() as other:  # a second connection: another web process
                other.execute(sa.text(
                    "INSERT INTO havn_payments (project_id, amount, currency, status, customer_email, "
                    "payment_gateway, payment_gateway_transaction_id, delivery_state, attempts, created_at, "
                    "updated_at) VALUES (:p, 2500, 'USD', 'completed', 'e@example.com', 'MANUAL', 'gw-race', "
                    "'pending', 0, :now, :now)"), {"p": b_id, "now": str(now)})  # text: no sqlite3 datetime adapter

        db.session.add(HostOrder(note="order 1"))
        sa.event.listen(db.session(), "before_flush", another_request_records_it_first, once=True)
        recorded = host.havn.payments.record_or_get(b_id, 2500, customer_email="e@example.com",
                                                    payment_gateway_transaction_id="gw-race")
        assert recorded.created is False
        winner = recorded.payment.id
    with host.app.app_context():
        assert db.session.execute(sa.text("SELECT note FROM host_orders")).scalars().all() == ["order 1"]
        rows = db.session.execute(sa.text("SELECT id FROM havn_payments WHERE payment_gateway_transaction_id "
                                          "= 'gw-race'")).scalars().all()
        assert rows == [winner]


def test_record_or_get_says_created_and_validate_names_every_argument(make_host: Any) -> None:
    host = _worker_host(make_host)
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        payments = host.havn.payments
        assert payments.validate(b_id, 100, customer_email="e@example.com") == {}
        problems = payments.validate(999, -1, "XXX", customer_email="nope", subtotal="1")
        assert set(problems) == {"project", "amount", "currency", "customer_email", "subtotal"}
        assert "no project with id 999" in problems["project"]
        first = payments.record_or_get(b_id, 100, customer_email="e@example.com", payment_gateway_transaction_id="g1")
        again = payments.record_or_get(b_id, 100, customer_email="e@example.com", payment_gateway_transaction_id="g1")
        assert (first.created, again.created, again.payment.id) == (True, False, first.payment.id)
        with pytest.raises(HAVNRecordNotFoundError) as info:
            payments.get(424242)
        assert info.value.status_code == 404 and info.value.field == "payment"


# -- 2. a raising after-commit receiver never stops delivery ------------------------------------

@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_raising_transaction_sent_receiver_is_logged_and_delivery_goes_on(
        make_host: Any, caplog: pytest.LogCaptureFixture, concurrency: int) -> None:
    host = _worker_host(make_host)
    _, _, b_id, _ = synced_chain(host)
    ids = record_many(host, b_id, 5)

    def bookkeeping(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("ledger offline")

    signals.transaction_sent.connect(bookkeeping)
    try:
        with caplog.at_level(logging.ERROR, logger="flask_havn.signals"), host.app.app_context():
            counts = host.havn.outbox.deliver_due(concurrency=concurrency)
    finally:
        signals.transaction_sent.disconnect(bookkeeping)
    assert counts["sent"] == 5
    assert [_state_of(host, i) for i in ids] == ["sent"] * 5
    failures = [r for r in caplog.records if "ledger offline" in (r.exc_text or "")]
    assert len(failures) == 5
    assert {f"payment {i}" for i in ids} == {r.getMessage().split(" for ")[1].split(";")[0] for r in failures}


def test_inline_delivery_with_a_raising_receiver_does_not_say_delivery_failed(
        make_host: Any, caplog: pytest.LogCaptureFixture) -> None:
    host = quiet(make_host)(FAST_RETRY)
    _, _, b_id, _ = synced_chain(host)
    calls: List[int] = []

    def bookkeeping(sender: Any, *, payment: Any, **kwargs: Any) -> None:
        calls.append(payment.id)
        raise RuntimeError("ledger offline")

    signals.transaction_sent.connect(bookkeeping)
    try:
        with caplog.at_level(logging.INFO), host.app.app_context():
            payment = host.havn.payments.record(b_id, 900, customer_email="e@example.com")
            assert payment.delivery_state == "sent"
    finally:
        signals.transaction_sent.disconnect(bookkeeping)
    assert calls == [payment.id]
    assert not [r for r in caplog.records if "inline delivery" in r.getMessage()]


# -- 3. and 4. a pass: constant cost per claim, and a limit that holds across threads -------------

def test_a_pass_never_sends_a_growing_list_of_ids(make_host: Any) -> None:
    host = _worker_host(make_host)
    _, _, b_id, _ = synced_chain(host)
    record_many(host, b_id, 30)
    statements: List[str] = []
    with host.app.app_context():
        engine = host.db.engine

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        sa.event.listen(engine, "before_cursor_execute", seen)
        try:
            counts = host.havn.outbox.deliver_due()
        finally:
            sa.event.remove(engine, "before_cursor_execute", seen)
    assert counts["sent"] == 30
    payment_sql = [s for s in statements if "havn_payments" in s]
    assert not [s for s in payment_sql if "NOT IN" in s.upper()]
    # The second half of the pass sends only statements the first half sent already, word for
    # word: nothing in them grows with the number of payments processed.
    half = len(payment_sql) // 2
    assert set(payment_sql[half:]) <= set(payment_sql[:half])
    assert len(set(payment_sql)) <= 6


@pytest.mark.parametrize("run", range(3))
def test_a_limit_holds_across_threads(make_host: Any, run: int) -> None:
    host = _worker_host(make_host)
    _, _, b_id, _ = synced_chain(host)
    record_many(host, b_id, 10)
    with host.app.app_context():
        counts = host.havn.outbox.deliver_due(concurrency=4, limit=3)
        assert sum(counts.values()) == 3 and counts["sent"] == 3
        assert host.havn.outbox.count_due() == 7
    assert dump(sandbox_of(host))["counts"]["transactions"] == 3


# -- 5. retry never overwrites a worker's live claim --------------------------------------------

def test_retry_does_not_steal_a_row_a_worker_is_sending(make_host: Any) -> None:
    host = _worker_host(make_host)
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    with host.app.app_context():
        state = get_state()
        state.session.execute(sa.text("UPDATE havn_payments SET delivery_state = 'failed' WHERE id = :i"),
                              {"i": payment_id})
        state.session.commit()
        assert claim(state, payment_id, worker_id="worker-1") is True
        with pytest.raises(HAVNConflictError) as info:
            host.havn.payments.retry(payment_id)
        assert "being delivered by a worker" in info.value.message
        done = attempt(state, payment_id, "worker-1")
        assert done.state == "sent" and done.payment.havn_transaction_id
    assert _state_of(host, payment_id) == "sent"


# -- 6. the pass and the signal report what this worker recorded --------------------------------

def test_a_failed_attempt_is_reported_as_failed_even_if_another_worker_took_the_row_at_once(
        make_host: Any) -> None:
    host = _worker_host(make_host)
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    sandbox_of(host).faults.configure({"seed": 1, "rates": {"502": 1.0}})
    carried: List[str] = []

    def on_failed(sender: Any, *, payment: Any, **kwargs: Any) -> None:
        carried.append(payment.delivery_state)

    with host.app.app_context():
        session = host.db.session()
        engine = host.db.engine

        def another_worker_claims(session: Any) -> None:  # right after this worker's commit
            with engine.begin() as other:
                other.execute(sa.text("UPDATE havn_payments SET delivery_state = 'sending', claimed_by = 'w2', "
                                      "claimed_at = :now WHERE id = :i AND delivery_state = 'failed'"),
                              {"i": payment_id, "now": str(utcnow())})

        signals.transaction_failed.connect(on_failed)
        try:
            assert claim(get_state(), payment_id, worker_id="w1")
            sa.event.listen(session, "after_commit", another_worker_claims, once=True)
            done = attempt(get_state(), payment_id, "w1")
        finally:
            signals.transaction_failed.disconnect(on_failed)
            sandbox_of(host).faults.clear()
    assert done.state == "failed" and done.payment.delivery_state == "failed"
    assert carried == ["failed"]
    assert _state_of(host, payment_id) == "sending"  # w2 really holds it now


# -- 10. ids from the command line are bounded like the routes' -------------------------------

def test_cli_ids_beyond_the_database_are_clean_errors(make_host: Any) -> None:
    host = _worker_host(make_host)
    runner = host.app.test_cli_runner()
    huge = "99999999999999999999"
    trigger = runner.invoke(args=["havn", "trigger", "commission.distributed", "--payment", huge])
    assert trigger.exit_code == 1 and "no payment has the id" in trigger.output
    assert not isinstance(trigger.exception, OverflowError)
    for args in (["havn", "sync-project", huge, "--email", "a@b.example", "--name", "A"],
                 ["havn", "sync-members", huge, "-"]):
        result = runner.invoke(args=args, input="email,name\na@b.example,A\n")
        assert result.exit_code == 2 and "is not in the range" in result.output, result.output


def test_the_services_are_bound_to_their_app(make_host: Any) -> None:
    one, two = _worker_host(make_host), _worker_host(make_host)
    with one.app.app_context():
        created = one.havn.projects.create("Only here")
        assert one.havn.projects.list() == ([created], 1)
    with two.app.app_context():
        assert two.havn.projects.list() == ([], 0)
        assert two.havn.projects is get_state().projects is not get_state(one.app).projects
    with one.app.app_context(), pytest.raises(HAVNValidationError):
        one.havn.payments.list(delivery_state="lost")


def test_threads_of_a_pass_each_use_their_own_session_of_the_database(make_host: Any) -> None:
    host = _worker_host(make_host)
    _, _, b_id, _ = synced_chain(host)
    record_many(host, b_id, 6)
    sessions = set()
    lock = threading.Lock()

    def note(payment: Any) -> None:
        with lock:
            sessions.add(id(sa.inspect(payment).session))

    with host.app.app_context():
        counts = host.havn.outbox.deliver_due(concurrency=3, on_delivered=note)
    assert counts["sent"] == 6 and len(sessions) >= 2

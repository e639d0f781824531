"""The delivery step: claiming, outcomes, backoff schedule, dead letters, leases (in-process sandbox)."""
from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any, Dict, List

import pytest

from flask_havn import delivery, signals
from flask_havn.outbox.attempt import attempt
from flask_havn.state import get_state
from flask_havn.config import HAVNConfig
from flask_havn.errors import (
    HAVNAPIError,
    HAVNAuthError,
    HAVNConflictError,
    HAVNError,
    HAVNNetworkError,
    HAVNNotFoundError,
    HAVNRateLimitError,
    HAVNValidationError,
)
from flask_havn.models import utcnow

from _projects_helpers import FAST_RETRY, dump, quiet, record_many, sandbox_of, synced_chain

@pytest.fixture
def make_host(make_host: Any) -> Any:
    """Hosts whose embedded sandbox posts no events back (see _projects_helpers.quiet)."""
    return quiet(make_host)



def test_retry_delay_doubles_up_to_the_maximum() -> None:
    assert [delivery.retry_delay(n, 30, 200) for n in range(1, 6)] == [30, 60, 120, 200, 200]
    assert delivery.retry_delay(1, 0, 100) == 0
    assert delivery.retry_delay(10_000, 1, 6 * 3600) == 6 * 3600  # no overflow


def test_lease_outlasts_one_full_client_call() -> None:
    config = HAVNConfig(timeout=30, max_retries=3)
    assert delivery.lease_seconds(config) == 300
    slow = HAVNConfig(timeout=5, max_retries=20)
    assert delivery.lease_seconds(slow) == 21 * 5 + 60


@pytest.mark.parametrize("error, verdict", [
    (HAVNConflictError("same id, other payload", status_code=409), "dead"),
    (HAVNValidationError("amount", "must be > 0"), "dead"),
    (HAVNNotFoundError("unknown referral code", status_code=404), "dead"),
    (HAVNAPIError("bad request", status_code=400), "dead"),
    (HAVNAPIError("unprocessable", status_code=422), "dead"),
    (HAVNAPIError("server error", status_code=500), "failed"),
    (HAVNAPIError("no status"), "failed"),
    (HAVNRateLimitError("slow down", retry_after=3), "failed"),
    (HAVNAuthError("wrong key", status_code=401), "failed"),
    (HAVNNetworkError("timeout"), "failed"),
    (HAVNError("other"), "failed"),
    (RuntimeError("bug"), "failed"),
])
def test_classify_error(error: BaseException, verdict: str) -> None:
    got, message = delivery.classify_error(error)
    assert got == verdict
    assert message


def _row(host: Any, payment_id: int) -> Any:
    return host.db.session.get(host.havn.models.Payment, payment_id)


def test_claim_is_taken_once(make_host: Any) -> None:
    host = make_host({"HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    with host.app.app_context():
        assert delivery.claim(payment_id, worker_id="one") is True
        assert delivery.claim(payment_id, worker_id="two") is False
        row = _row(host, payment_id)
        assert (row.delivery_state, row.claimed_by, row.attempts) == ("sending", "one", 1)
        # A live claim is not due; a stale one (crashed worker) is.
        assert delivery.count_due() == 0
        later = utcnow() + timedelta(seconds=delivery.lease_seconds(host.havn.config) + 1)
        assert delivery.count_due(now=later) == 1
        assert delivery.claim(payment_id, worker_id="three", now=later) is True
        host.db.session.refresh(row)
        assert (row.claimed_by, row.attempts) == ("three", 2)


def test_a_crashed_workers_payment_is_reclaimed_and_sent_once(make_host: Any) -> None:
    host = make_host({"HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    with host.app.app_context():
        assert delivery.claim(payment_id, worker_id="crashed") is True
        assert delivery.deliver(payment_id).delivery_state == "sending"  # still held
        later = utcnow() + timedelta(hours=1)
        row = delivery.deliver(payment_id, now=later)
        assert (row.delivery_state, row.attempts, row.claimed_by) == ("sent", 2, None)
    assert dump(sandbox_of(host))["counts"]["transactions"] == 1


def test_an_expired_claim_cannot_overwrite_the_new_owners_result(make_host: Any) -> None:
    host = make_host({"HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    with host.app.app_context():
        assert delivery.claim(payment_id, worker_id="slow") is True
        later = utcnow() + timedelta(hours=1)
        assert delivery.claim(payment_id, worker_id="fast", now=later) is True
        # The slow worker's answer arrives after its lease ran out: it must not be recorded.
        row = attempt(get_state(), payment_id, "slow").payment
        assert (row.delivery_state, row.claimed_by) == ("sending", "fast")
        row = attempt(get_state(), payment_id, "fast").payment
        assert (row.delivery_state, row.claimed_by) == ("sent", None)
    # Both sends reached HAVN with the same identity: one transaction.
    assert dump(sandbox_of(host))["counts"]["transactions"] == 1


def test_backoff_schedule_then_dead(make_host: Any) -> None:
    host = make_host({**FAST_RETRY, "HAVN_DELIVERY": "worker", "HAVN_DELIVERY_BACKOFF": 10,
                      "HAVN_DELIVERY_MAX_BACKOFF": 25, "HAVN_DELIVERY_MAX_ATTEMPTS": 4})
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    sandbox_of(host).faults.configure({"seed": 1, "rates": {"502": 1.0}})
    failed: List[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        failed.append(kwargs["payment"].delivery_state)

    signals.transaction_failed.connect(receiver)
    try:
        with host.app.app_context():
            now = utcnow()
            delays = []
            for attempt in range(1, 4):
                row = delivery.deliver(payment_id, now=now)
                assert (row.delivery_state, row.attempts) == ("failed", attempt)
                delays.append((row.next_attempt_at - now).total_seconds())
                # Not due a moment before next_attempt_at:
                early = delivery.deliver(payment_id, now=row.next_attempt_at - timedelta(seconds=1))
                assert early.attempts == attempt
                now = row.next_attempt_at
            assert delays == [10, 20, 25]
            row = delivery.deliver(payment_id, now=now)
            assert (row.delivery_state, row.attempts, row.next_attempt_at) == ("dead", 4, None)
            assert "gave up after 4 attempts" in row.last_error and "502" in row.last_error
            assert delivery.deliver(payment_id, now=now + timedelta(days=1)).attempts == 4  # dead: never due

            assert delivery.requeue_dead() == 1
            sandbox_of(host).faults.clear()
            row = delivery.deliver(payment_id)
            assert (row.delivery_state, row.attempts) == ("sent", 1)
    finally:
        signals.transaction_failed.disconnect(receiver)
    assert failed == ["failed", "failed", "failed", "dead"]


def test_rate_limit_waits_at_least_until_havns_reset(make_host: Any) -> None:
    host = make_host({**FAST_RETRY, "HAVN_DELIVERY": "worker", "HAVN_DELIVERY_BACKOFF": 1,
                      "HAVN_DELIVERY_MAX_BACKOFF": 3600})
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    sandbox_of(host).faults.configure({"seed": 1, "burst_429": 1})
    with host.app.app_context():
        now = utcnow()
        row = delivery.deliver(payment_id, now=now)
        assert row.delivery_state == "failed" and "429" in row.last_error
        # The sandbox's X-RateLimit-Reset is 2-3 s ahead: more than the 1 s backoff.
        assert 1.5 <= (row.next_attempt_at - now).total_seconds() <= 3.5


def test_a_lost_answer_is_resent_and_havn_returns_the_original(make_host: Any) -> None:
    host = make_host({**FAST_RETRY, "HAVN_DELIVERY": "worker"})
    _, a_code, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    sandbox = sandbox_of(host)
    sandbox.faults.configure({"seed": 1, "rates": {"drop": 1.0}})
    with host.app.app_context():
        row = delivery.deliver(payment_id)
        assert row.delivery_state == "failed"
        stored = dump(sandbox)["transactions"]
        assert len(stored) == 1  # HAVN stored it; only the answer was lost
        sandbox.faults.clear()
        row = delivery.deliver(payment_id)
        assert (row.delivery_state, row.attempts) == ("sent", 2)
        assert row.havn_transaction_id == stored[0]["transaction_id"]
    state = dump(sandbox)
    assert state["counts"] == {**state["counts"], "transactions": 1, "commissions": 1}


def test_a_409_is_dead_at_once_with_a_clear_message(make_host: Any) -> None:
    host = make_host({**FAST_RETRY, "HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    with host.app.app_context():
        assert delivery.deliver(payment_id).delivery_state == "sent"
        row = _row(host, payment_id)
        # The host edits the amount of a payment HAVN already has, and re-queues it.
        row.amount, row.delivery_state = row.amount + 1, "pending"
        host.db.session.commit()
        row = delivery.deliver(payment_id)
        assert (row.delivery_state, row.attempts, row.next_attempt_at) == ("dead", 2, None)
        assert "409" in row.last_error and "new payment_gateway_transaction_id" in row.last_error
        assert delivery.count_due(now=utcnow() + timedelta(days=365)) == 0
    assert dump(sandbox_of(host))["counts"]["transactions"] == 1


def test_unknown_upline_code_is_dead(make_host: Any) -> None:
    host = make_host({**FAST_RETRY, "HAVN_DELIVERY": "worker"})
    with host.app.app_context():
        project = host.havn.create_project("Orphan", upline_referral_code="HAVN-QQ-404")
        project_id = project.id
    (payment_id,) = record_many(host, project_id, 1)
    with host.app.app_context():
        row = delivery.deliver(payment_id)
        assert row.delivery_state == "dead"
        assert "HAVN-QQ-404" in row.last_error and "upline_referral_code" in row.last_error


def test_a_row_breaking_havns_rules_is_dead_without_a_request(make_host: Any) -> None:
    host = make_host({**FAST_RETRY, "HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    with host.app.app_context():
        row = _row(host, payment_id)
        row.customer_email = "not an email"
        host.db.session.commit()
        row = delivery.deliver(payment_id)
        assert row.delivery_state == "dead" and "customer_email" in row.last_error
    assert dump(sandbox_of(host))["counts"]["transactions"] == 0


def test_a_failed_conversion_is_recorded_and_not_retried(make_host: Any) -> None:
    host = make_host(FAST_RETRY)  # inline delivery
    _, _, b_id, _ = synced_chain(host)
    errors: List[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        errors.append((kwargs["payment"].delivery_state, kwargs["error"].message))

    signals.transaction_failed.connect(receiver)
    try:
        with host.app.app_context():
            payment = host.havn.record_payment(
                b_id, 1000, "USD", customer_email="e@example.com",
                custom_fields={"original_currency": "IDR", "original_amount": 150000, "exchange_rate": "0.01"})
            assert payment.delivery_state == "conversion_failed"
            assert payment.havn_details["transaction"]["status"] == "FAILED"
            assert payment.commissions == [] and payment.total_commission == 0
            assert "FAILED" in payment.last_error
            assert delivery.deliver(payment.id, now=utcnow() + timedelta(days=1)).attempts == 1
    finally:
        signals.transaction_failed.disconnect(receiver)
    assert [state for state, _ in errors] == ["conversion_failed"]
    assert "does not match" in errors[0][1]


def test_unknown_payment_id(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        with pytest.raises(HAVNValidationError) as info:
            delivery.deliver(404)
        assert info.value.field == "payment"
        with pytest.raises(HAVNValidationError):
            delivery.deliver("1")  # type: ignore[arg-type]


def test_status_report_and_a_pass(make_host: Any) -> None:
    host = make_host({**FAST_RETRY, "HAVN_DELIVERY": "worker", "HAVN_DELIVERY_MAX_ATTEMPTS": 1})
    _, _, b_id, _ = synced_chain(host)
    ids = record_many(host, b_id, 5)
    with host.app.app_context():
        host.havn.record_payment(b_id, 700, customer_email="p@example.com", status="pending")
        report = delivery.status_report()
        assert report["by_state"]["pending"] == 5 and report["due"] == 5 and report["not_completed"] == 1
        assert report["oldest_pending"]["id"] == ids[0]
        sandbox_of(host).faults.configure({"seed": 2, "burst_429": 2})
        counts = delivery.deliver_due()
        assert counts["sent"] == 3 and counts["dead"] == 2
        report = delivery.status_report()
        assert (report["by_state"]["sent"], report["by_state"]["dead"], report["due"]) == (3, 2, 0)
        assert report["oldest_pending"] is None
        with pytest.raises(HAVNValidationError):
            delivery.deliver_due(concurrency=0)


def test_deliver_due_with_a_limit_and_threads(make_host: Any) -> None:
    host = make_host({"HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    record_many(host, b_id, 6)
    seen: List[int] = []
    with host.app.app_context():
        assert delivery.deliver_due(limit=2)["sent"] == 2
        counts = delivery.deliver_due(concurrency=3, on_delivered=lambda p: seen.append(p.id))
        assert counts["sent"] == 4 and len(seen) == 4
        assert delivery.deliver_due() == {"sending": 0, "sent": 0, "failed": 0, "conversion_failed": 0, "dead": 0}
    assert dump(sandbox_of(host))["counts"]["transactions"] == 6


def test_run_worker_loops_until_stopped(make_host: Any) -> None:
    host = make_host({"HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    record_many(host, b_id, 2)
    stop = threading.Event()
    passes: List[Dict[str, int]] = []
    sleeps: List[float] = []

    def idle_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        stop.set()  # Ctrl-C after the first idle pass

    with host.app.app_context():
        delivery.run_worker(interval=7, stop=stop, sleep=idle_sleep, on_pass=passes.append)
    assert [p["sent"] for p in passes] == [2, 0]
    assert sleeps == [7]

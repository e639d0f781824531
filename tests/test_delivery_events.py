"""Delivery and HAVN's own events (the webhook receiver) updating the same payment."""
from __future__ import annotations

from typing import Any, List

from flask_havn import delivery, signals
from flask_havn.outbox.attempt import attempt
from flask_havn.state import get_state
from flask_havn.testing import wait_for_events

from _projects_helpers import FAST_RETRY, dump, record_many, sandbox_of, synced_chain


def _settle(host: Any) -> None:
    wait_for_events(host.app, timeout=30)


def test_inline_delivery_and_the_commission_event_agree(make_host: Any) -> None:
    host = make_host()  # the embedded sandbox posts its events to the host's webhook endpoint
    _, a_code, b_id, _ = synced_chain(host)
    with host.app.app_context():
        payment = host.havn.record_payment(b_id, 10000, customer_email="c@example.com")
        payment_id = payment.id
    _settle(host)
    (txn,) = dump(sandbox_of(host))["transactions"]
    with host.app.app_context():
        row = host.db.session.get(host.havn.models.Payment, payment_id)
        assert (row.delivery_state, row.attempts, row.claimed_by) == ("sent", 1, None)
        assert row.havn_transaction_id == txn["transaction_id"]
        assert row.total_commission == 500
        assert [c["referral_code"] for c in row.commissions] == [a_code]
        events = host.havn.models.WebhookEvent.query.all()
        assert [(e.type, e.status, e.payment_id) for e in events] == \
            [("commission.distributed", "processed", payment_id)]


def test_a_conversion_failure_event_agrees_with_the_answer(make_host: Any) -> None:
    host = make_host()
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        payment = host.havn.record_payment(
            b_id, 1000, customer_email="c@example.com",
            custom_fields={"original_currency": "IDR", "original_amount": 150000, "exchange_rate": "0.01"})
        payment_id = payment.id
    _settle(host)
    with host.app.app_context():
        row = host.db.session.get(host.havn.models.Payment, payment_id)
        assert (row.delivery_state, row.attempts, row.claimed_by) == ("conversion_failed", 1, None)
        assert "does not match" in row.last_error
        assert delivery.count_due() == 0


def test_our_answer_is_still_recorded_after_the_event_said_sent(make_host: Any) -> None:
    host = make_host({"HAVN_DELIVERY": "worker", "HAVN_SANDBOX_WEBHOOK_URL": None})
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    sent: List[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs["payment"].id)

    signals.transaction_sent.connect(receiver)
    try:
        with host.app.app_context():
            assert delivery.claim(payment_id, worker_id="w") is True
            row = host.db.session.get(host.havn.models.Payment, payment_id)
            row.delivery_state = "sent"  # what the receiver writes when HAVN's event arrives first
            host.db.session.commit()
            row = attempt(get_state(), payment_id, "w").payment
            assert (row.delivery_state, row.claimed_by) == ("sent", None)
            assert row.havn_transaction_id and row.total_commission == row.amount * 5 // 100
    finally:
        signals.transaction_sent.disconnect(receiver)
    assert sent == [payment_id]


def test_a_lost_answer_does_not_undo_the_events_sent(make_host: Any) -> None:
    host = make_host({**FAST_RETRY, "HAVN_DELIVERY": "worker", "HAVN_SANDBOX_WEBHOOK_URL": None})
    _, _, b_id, _ = synced_chain(host)
    (payment_id,) = record_many(host, b_id, 1)
    failed: List[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        failed.append(kwargs["payment"].id)

    sandbox_of(host).faults.configure({"seed": 1, "rates": {"drop": 1.0}})
    signals.transaction_failed.connect(receiver)
    try:
        with host.app.app_context():
            assert delivery.claim(payment_id, worker_id="w") is True
            row = host.db.session.get(host.havn.models.Payment, payment_id)
            row.delivery_state, row.havn_transaction_id = "sent", "txn_from_event"
            host.db.session.commit()
            row = attempt(get_state(), payment_id, "w").payment
            assert (row.delivery_state, row.havn_transaction_id, row.claimed_by) == ("sent", "txn_from_event", None)
            assert delivery.count_due() == 0
    finally:
        signals.transaction_failed.disconnect(receiver)
    assert failed == []

"""Services for payments: record, complete, retry; inline vs worker delivery (in-process sandbox)."""
from __future__ import annotations

import threading
from typing import Any, List

import pytest

from flask_havn import signals
from flask_havn.errors import HAVNConflictError, HAVNValidationError

from _projects_helpers import dump, quiet, sandbox_of, synced_chain

@pytest.fixture
def make_host(make_host: Any) -> Any:
    """Hosts whose embedded sandbox posts no events back (see _projects_helpers.quiet)."""
    return quiet(make_host)



def _payments(host: Any) -> int:
    with host.app.app_context():
        return host.havn.models.Payment.query.count()


def test_completed_payment_is_sent_inline_with_the_upline_code(make_host: Any) -> None:
    host = make_host()
    a_id, a_code, b_id, b_code = synced_chain(host)
    sent: List[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append((sender, kwargs["payment"].delivery_state, kwargs["result"].transaction.referral_code))

    signals.transaction_sent.connect(receiver)
    try:
        with host.app.app_context():
            payment = host.havn.record_payment(b_id, 10000, "USD", customer_email="carol@example.com",
                                               payment_gateway="stripe", payment_gateway_transaction_id="pi_1",
                                               invoice_id="INV-1", transaction_type="SALE")
            assert payment.delivery_state == "sent"
            assert payment.payment_gateway == "STRIPE"
            assert payment.attempts == 1
            assert payment.havn_transaction_id
            assert payment.total_commission == 500
            assert [c["referral_code"] for c in payment.commissions] == [a_code]
            assert payment.sent_at is not None and payment.last_error is None
            txn_id = payment.havn_transaction_id
    finally:
        signals.transaction_sent.disconnect(receiver)
    assert sent == [(host.app, "sent", a_code)]
    state = dump(sandbox_of(host))
    assert [(t["transaction_id"], t["referral_code"], t["invoice_id"]) for t in state["transactions"]] == \
        [(txn_id, a_code, "INV-1")]
    # Never the project's own code:
    assert all(t["referral_code"] != b_code for t in state["transactions"])


def test_payment_of_a_project_without_upline_is_platform_revenue(make_host: Any) -> None:
    host = make_host()
    a_id, a_code, _, _ = synced_chain(host)
    with host.app.app_context():
        payment = host.havn.record_payment(a_id, 5000, customer_email="dan@example.com")
        assert payment.delivery_state == "sent"
        assert payment.commissions == [] and payment.total_commission == 0
    (txn,) = dump(sandbox_of(host))["transactions"]
    assert txn["referral_code"] is None and txn["platform_amount"] == 5000


def test_worker_mode_only_records(make_host: Any) -> None:
    host = make_host({"HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        payment = host.havn.record_payment(b_id, 2500, customer_email="e@example.com")
        assert (payment.delivery_state, payment.attempts) == ("pending", 0)
        assert payment.payment_gateway_transaction_id.startswith("havn_")
        assert payment.payment_gateway == "MANUAL"
        delivered = host.havn.deliver_payment(payment.id)
        assert delivered.delivery_state == "sent"
    assert len(dump(sandbox_of(host))["transactions"]) == 1


def test_pending_payment_is_sent_only_once_completed(make_host: Any) -> None:
    host = make_host()
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        payment = host.havn.record_payment(b_id, 2500, customer_email="e@example.com", status="pending")
        assert (payment.status, payment.delivery_state) == ("pending", "pending")
        assert host.havn.deliver_payment(payment).delivery_state == "pending"  # not due: not completed
        assert dump(sandbox_of(host))["counts"]["transactions"] == 0
        payment = host.havn.complete_payment(payment.id)
        assert (payment.status, payment.delivery_state) == ("completed", "sent")
        assert payment.completed_at is not None
        again = host.havn.complete_payment(payment)  # idempotent
        assert again.delivery_state == "sent" and again.attempts == 1
    assert dump(sandbox_of(host))["counts"]["transactions"] == 1


def test_refunded_payment_cannot_be_completed(make_host: Any) -> None:
    host = make_host()
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        payment = host.havn.record_payment(b_id, 2500, customer_email="e@example.com", status="refunded")
        with pytest.raises(HAVNValidationError) as info:
            host.havn.complete_payment(payment)
        assert info.value.field == "status" and "refunded" in info.value.message
        assert payment.delivery_state == "pending" and payment.status == "refunded"


def test_recording_the_same_gateway_id_again_returns_the_same_payment(make_host: Any) -> None:
    host = make_host({"HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        first = host.havn.record_payment(b_id, 2500, customer_email="e@example.com", status="pending",
                                         payment_gateway_transaction_id="pi_same")
        again, created = host.havn.payments.record_or_get(b_id, 2500, customer_email="e@example.com",
                                                   payment_gateway_transaction_id="pi_same")
        assert created is False and again.id == first.id
        assert again.status == "completed"  # the provider's "succeeded" webhook completed it
        with pytest.raises(HAVNConflictError) as info:
            host.havn.record_payment(b_id, 9999, customer_email="e@example.com",
                                     payment_gateway_transaction_id="pi_same")
        assert "amount" in info.value.message and info.value.status_code == 409
    assert _payments(host) == 1


@pytest.mark.parametrize("kwargs, fields", [
    ({"amount": 0}, {"amount"}),
    ({"amount": 10.5}, {"amount"}),
    ({"amount": True}, {"amount"}),
    ({"amount": "100"}, {"amount"}),
    ({"amount": 1_000_000_001}, {"amount"}),
    ({"currency": "XYZ"}, {"currency"}),
    ({"customer_email": None}, {"customer_email"}),
    ({"customer_email": "nope"}, {"customer_email"}),
    ({"status": "paid"}, {"status"}),
    ({"custom_fields": {"a": 1, "b": 2, "c": 3, "d": 4}}, {"custom_fields"}),
    ({"custom_fields": {"a": None}}, {"custom_fields.a"}),
    ({"custom_fields": [1]}, {"custom_fields"}),
    ({"invoice_id": "i" * 101}, {"invoice_id"}),
    ({"payment_gateway_transaction_id": "  "}, {"payment_gateway_transaction_id"}),
    ({"payment_gateway_transaction_id": "p" * 201}, {"payment_gateway_transaction_id"}),
    ({"payment_gateway": {"x": 1}}, {"payment_gateway"}),
    ({"transaction_type": "t" * 51}, {"transaction_type"}),
    ({"subtotal": 100}, {"subtotal"}),
    ({"project": 999}, {"project"}),
    ({"project": "1"}, {"project"}),
    ({"amount": -5, "currency": "usdx", "customer_email": "x"}, {"amount", "currency", "customer_email"}),
])
def test_bad_payments_are_refused_and_nothing_is_written(make_host: Any, kwargs: dict, fields: set) -> None:
    host = make_host()
    _, _, b_id, _ = synced_chain(host)
    call = {"project": b_id, "amount": 1000, "currency": "USD", "customer_email": "e@example.com"}
    call.update(kwargs)
    with host.app.app_context():
        with pytest.raises(HAVNValidationError) as info:
            host.havn.record_payment(call.pop("project"), call.pop("amount"), call.pop("currency"), **call)
    assert set(info.value.errors) == fields
    assert _payments(host) == 0
    assert dump(sandbox_of(host))["counts"]["transactions"] == 0


def test_inline_failure_never_raises_and_leaves_the_payment_failed(make_host: Any) -> None:
    host = make_host({"HAVN_MAX_RETRIES": 0, "HAVN_DELIVERY_BACKOFF": 30})
    _, _, b_id, _ = synced_chain(host)
    failures: List[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        failures.append((kwargs["payment"].delivery_state, type(kwargs["error"]).__name__))

    sandbox_of(host).faults.configure({"seed": 3, "rates": {"503": 1.0}})
    signals.transaction_failed.connect(receiver)
    try:
        with host.app.app_context():
            payment = host.havn.record_payment(b_id, 1000, customer_email="e@example.com")
            assert payment.delivery_state == "failed"
            assert payment.attempts == 1
            assert "503" in payment.last_error
            delay = (payment.next_attempt_at - payment.updated_at).total_seconds()
            assert delay == pytest.approx(30, abs=0.01)
            assert payment.claimed_by is None
    finally:
        signals.transaction_failed.disconnect(receiver)
    assert failures == [("failed", "HAVNAPIError")]


def test_retry_puts_a_dead_payment_back_and_delivers_it(make_host: Any) -> None:
    host = make_host({"HAVN_MAX_RETRIES": 0, "HAVN_DELIVERY_MAX_ATTEMPTS": 1})
    _, _, b_id, _ = synced_chain(host)
    faults = sandbox_of(host).faults
    faults.configure({"seed": 3, "rates": {"500": 1.0}})
    with host.app.app_context():
        payment = host.havn.record_payment(b_id, 1000, customer_email="e@example.com")
        assert payment.delivery_state == "dead"
        assert "gave up after 1 attempts" in payment.last_error
        faults.clear()
        payment = host.havn.retry_payment(payment.id)
        assert (payment.delivery_state, payment.attempts) == ("sent", 1)
        with pytest.raises(HAVNConflictError) as info:
            host.havn.retry_payment(payment)
        assert "already delivered" in info.value.message


def test_retry_refuses_payments_that_are_not_completed(make_host: Any) -> None:
    host = make_host()
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        payment = host.havn.record_payment(b_id, 1000, customer_email="e@example.com", status="pending")
        with pytest.raises(HAVNValidationError) as info:
            host.havn.retry_payment(payment)
        assert info.value.field == "status" and "complete it first" in info.value.message
        with pytest.raises(HAVNValidationError) as unknown:
            host.havn.retry_payment(12345)
        assert unknown.value.field == "payment"


def test_non_usd_payment_is_sent_for_server_side_conversion(make_host: Any) -> None:
    host = make_host()
    a_id, a_code, b_id, _ = synced_chain(host)
    with host.app.app_context():
        payment = host.havn.record_payment(b_id, 1_500_000, "idr", customer_email="e@example.com")
        assert payment.currency == "IDR"
        assert payment.delivery_state == "sent"
        assert payment.total_commission > 0
    (txn,) = dump(sandbox_of(host))["transactions"]
    assert (txn["currency"], txn["amount"], txn["original_currency"]) == ("IDR", 1_500_000, "IDR")
    assert payment.total_commission == txn["amount_usd"] * 5 // 100


def test_two_requests_recording_one_gateway_id_at_once_make_one_payment(make_host: Any) -> None:
    host = make_host({"HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    start = threading.Barrier(4)
    ids: List[int] = []
    errors: List[BaseException] = []

    def record() -> None:
        try:
            with host.app.app_context():
                start.wait()
                ids.append(host.havn.record_payment(b_id, 4200, customer_email="race@example.com",
                                                    payment_gateway_transaction_id="pi_race").id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(ids) == 4 and len(set(ids)) == 1
    assert _payments(host) == 1


# -- HAVN's amount cap applies to what is sent ------------------------------------------------

_CLIENT_IDR = {"HAVN_CURRENCY_CONVERSION": "client", "HAVN_EXCHANGE_RATES": {"IDR": "0.0000633"},
               "HAVN_DELIVERY": "worker"}


def test_client_mode_caps_the_usd_cents_sent_not_the_original_amount(make_host: Any) -> None:
    host = make_host(_CLIENT_IDR)
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        payment = host.havn.record_payment(b_id, 2_000_000_000, "IDR", customer_email="big@example.com")
        # 2,000,000,000 rupiah × 0.0000633 = 126,600.00 USD: 12,660,000 cents, well under HAVN's cap.
        assert (payment.amount, payment.currency, payment.amount_usd) == (2_000_000_000, "IDR", 12_660_000)
        assert (payment.conversion_mode, payment.delivery_state) == ("client", "pending")
    assert _payments(host) == 1


@pytest.mark.parametrize("amount, says", [
    (10 ** 15 + 1, "must be at most 1000000000000000 minor units"),       # the sane bound on the original
    (10 ** 15, "HAVN takes 1 to 1000000000 USD cents"),                   # 6.33e12 USD cents: over HAVN's cap
    (0, "greater than 0"),
    (2_000_000_000.0, "not float"),
])
def test_client_mode_still_bounds_the_original_amount(make_host: Any, amount: Any, says: str) -> None:
    host = make_host(_CLIENT_IDR)
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context(), pytest.raises(HAVNValidationError) as info:
        host.havn.record_payment(b_id, amount, "IDR", customer_email="big@example.com")
    assert info.value.field == "amount" and says in info.value.message
    assert _payments(host) == 0


@pytest.mark.parametrize("currency", ["IDR", "USD"])
def test_server_mode_refuses_an_amount_over_havns_cap_naming_it(make_host: Any, currency: str) -> None:
    host = make_host({"HAVN_CURRENCY_CONVERSION": "server", "HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context(), pytest.raises(HAVNValidationError) as info:
        host.havn.record_payment(b_id, 2_000_000_000, currency, customer_email="big@example.com")
    assert info.value.field == "amount" and "1000000000" in info.value.message
    if currency == "IDR":
        assert 'HAVN_CURRENCY_CONVERSION = "client"' in info.value.message
    assert _payments(host) == 0

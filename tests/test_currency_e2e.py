"""Currency end to end against the sandbox: both conversion modes, the audit columns, a refused conversion.

Hosts run the embedded sandbox in-process (its events reach the host's own
webhook endpoint in-process); the last test does the same over real HTTP on
loopback. ``conversion_failed`` must be sent once per failure, whichever of
HAVN's synchronous answer and its event is recorded first.
"""
from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests
import sqlalchemy as sa

from flask_havn import HAVNConfigError, HAVNValidationError, delivery, signals
from flask_havn.outbox.attempt import _record, send
from flask_havn.state import get_state
from flask_havn.currency import to_usd_cents
from flask_havn.sandbox import SandboxServer
from flask_havn.sandbox.settings import DEFAULT_EXCHANGE_RATES
from flask_havn.testing import wait_for_events
from flask_havn.webhook_testing import record_signals, sign_webhook

from _projects_helpers import FAST_RETRY, allow, dump, http_config, quiet, sandbox_of, synced_chain

#: One payment per currency: 0 decimals (IDR, JPY), 2 (EUR) and 3 (KWD), in minor units.
PAYMENTS = [("IDR", 1_500_000), ("JPY", 15_000), ("EUR", 12_345), ("KWD", 12_345)]
#: The host's own rates equal the sandbox's (what HAVN converts with).
SAME_RATES = {code: DEFAULT_EXCHANGE_RATES[code] for code, _ in PAYMENTS}


def _client(**extra: Any) -> Dict[str, Any]:
    return {"HAVN_CURRENCY_CONVERSION": "client", "HAVN_EXCHANGE_RATES": SAME_RATES, **FAST_RETRY, **extra}


def _settle(host: Any) -> None:
    wait_for_events(host.app, timeout=30)


def _row(host: Any, payment_id: int) -> Dict[str, Any]:
    with host.app.app_context():
        model = host.havn.models.Payment
        row = host.db.session.get(model, payment_id)
        return {c.name: getattr(row, c.name) for c in model.__table__.columns}


def _count_payments(host: Any) -> int:
    with host.app.app_context():
        return host.db.session.execute(sa.select(sa.func.count()).select_from(host.havn.models.Payment)).scalar()


def _move_sandbox_rate(host: Any, currency: str, rate: str) -> None:
    """PUT /_sandbox/rates on the embedded sandbox, as a test or the demo page would."""
    sandbox_app = host.app.extensions["havn"].sandbox_app
    response = sandbox_app.test_client().put("/_sandbox/rates", json={currency: rate})
    assert response.status_code == 200 and response.get_json()["rates"][currency] == rate


def _pay(host: Any, project_id: int, amount: int, currency: str, **fields: Any) -> Any:
    with host.app.app_context():
        payment = host.havn.record_payment(project_id, amount, currency, customer_email="buyer@example.com",
                                           **fields)
        return payment.id, payment.delivery_state


# -- both modes, four currencies ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["server", "client"])
@pytest.mark.parametrize("currency, amount", PAYMENTS)
def test_each_currency_in_each_mode_is_accepted_with_commissions(make_host: Any, mode: str, currency: str,
                                                                 amount: int) -> None:
    host = make_host(_client(HAVN_CURRENCY_CONVERSION=mode))
    _, a_code, b_id, _ = synced_chain(host)
    usd = to_usd_cents(amount, currency, DEFAULT_EXCHANGE_RATES[currency])
    payment_id, state = _pay(host, b_id, amount, currency)
    assert state == "sent"
    _settle(host)

    row = _row(host, payment_id)
    assert (row["amount"], row["currency"], row["conversion_mode"]) == (amount, currency, mode)
    assert (row["conversion_verdict"], row["havn_amount_usd"], row["amount_usd"]) == ("accepted", usd, usd)
    assert row["exchange_rate"] == DEFAULT_EXCHANGE_RATES[currency]
    assert row["exchange_rate_source"] == ("HAVN_EXCHANGE_RATES" if mode == "client" else "HAVN")
    assert row["total_commission"] == usd * 5 // 100 > 0
    assert [c["referral_code"] for c in row["commissions"]] == [a_code]

    (txn,) = dump(sandbox_of(host))["transactions"]
    if mode == "client":  # USD cents on the wire with the guide's audit trail
        assert (txn["amount"], txn["currency"]) == (usd, "USD")
        assert txn["custom_fields"] == {"original_currency": currency, "original_amount": amount,
                                        "exchange_rate": DEFAULT_EXCHANGE_RATES[currency]}
    else:
        assert (txn["amount"], txn["currency"], txn["custom_fields"]) == (amount, currency, None)
    assert txn["status"] == "completed" and txn["amount_usd"] == usd
    commissions = dump(sandbox_of(host))["commissions"]
    assert sum(c["amount"] for c in commissions) + txn["platform_amount"] == usd


def test_client_mode_sends_exactly_the_audit_trail(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    _, _, b_id, _ = synced_chain(host)
    payment_id, _ = _pay(host, b_id, 1_500_000, "IDR")
    with host.app.app_context():
        payment = host.db.session.get(host.havn.models.Payment, payment_id)
        assert delivery.money_fields(payment) == {
            "amount": 9495, "currency": "USD", "subtotal_transaction": None, "server_side_conversion": False,
            "custom_fields": {"original_currency": "IDR", "original_amount": 1_500_000, "exchange_rate": "0.0000633"}}


def test_the_payment_json_shows_the_audit(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    allow(host)
    _, _, b_id, _ = synced_chain(host)
    client = host.app.test_client()
    answer = client.post("/havn/payments", json={"project_id": b_id, "amount_cents": 12_345, "currency": "KWD",
                                                 "customer_email": "buyer@example.com"})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["conversion"] == {
        "mode": "client", "exchange_rate": "3.25", "exchange_rate_source": "HAVN_EXCHANGE_RATES",
        "amount_usd_cents": 4012, "subtotal_usd_cents": None, "verdict": "accepted", "havn_amount_usd_cents": 4012}
    usd = client.post("/havn/payments", json={"project_id": b_id, "amount_cents": 100, "currency": "USD",
                                              "customer_email": "buyer@example.com"})
    assert usd.get_json()["conversion"] is None


# -- the refused conversion ---------------------------------------------------------------


#: A sandbox rate moved away from the host's, per currency of :data:`PAYMENTS`.
MOVED_RATES = {"IDR": "0.00007", "JPY": "0.007", "EUR": "1.1", "KWD": "3.3"}


@pytest.mark.parametrize("currency, amount", PAYMENTS)
def test_a_moved_sandbox_rate_fails_synchronously_once_with_no_commission(make_host: Any, currency: str,
                                                                          amount: int) -> None:
    host = make_host(_client())
    _, _, b_id, _ = synced_chain(host)
    ours_rate, moved = DEFAULT_EXCHANGE_RATES[currency], MOVED_RATES[currency]
    ours, havns = to_usd_cents(amount, currency, ours_rate), to_usd_cents(amount, currency, moved)
    assert ours != havns  # the move really changes the USD cents
    _move_sandbox_rate(host, currency, moved)
    with record_signals() as sent:
        payment_id, state = _pay(host, b_id, amount, currency)
        assert state == "conversion_failed"  # HAVN's synchronous answer, recorded before record_payment returned
        _settle(host)
    row = _row(host, payment_id)
    assert (row["delivery_state"], row["conversion_verdict"]) == ("conversion_failed", "failed")
    assert (row["amount_usd"], row["havn_amount_usd"]) == (ours, havns)  # ours at the host's rate, HAVN's moved
    assert (row["exchange_rate"], row["exchange_rate_source"]) == (ours_rate, "HAVN_EXCHANGE_RATES")
    details = row["havn_details"]
    assert {k: details[k] for k in ("submitted_amount", "expected_amount", "submitted_exchange_rate",
                                    "server_exchange_rate", "original_amount", "original_currency")} == {
        "submitted_amount": ours, "expected_amount": havns, "submitted_exchange_rate": ours_rate,
        "server_exchange_rate": moved, "original_amount": amount, "original_currency": currency}
    assert (row["commissions"], row["total_commission"]) == ([], 0)

    names = [s.name for s in sent]
    assert names.count("havn.conversion-failed") == 1  # the answer and the event, announced once
    assert names.count("havn.transaction-failed") == 1
    assert names.count("havn.webhook-received") == 1  # the event did arrive and was processed
    announced = next(s for s in sent if s.name == "havn.conversion-failed")
    assert announced.kwargs["details"]["expected_amount"] == havns and announced.sender is host.app
    with host.app.app_context():
        events = host.havn.models.WebhookEvent.query.all()
        assert [(e.type, e.status, e.payment_id) for e in events] == [
            ("transaction.conversion_failed", "processed", payment_id)]

    state = dump(sandbox_of(host))
    assert state["counts"]["commissions"] == 0
    assert [(t["status"], t["amount"], t["currency"]) for t in state["transactions"]] == [("FAILED", ours, "USD")]
    # It is not retried: HAVN keeps the FAILED answer for this id.
    with host.app.app_context():
        assert delivery.count_due() == 0


def test_the_moved_rate_amounts_are_the_ones_worked_out_by_hand() -> None:
    """The IDR case of the test above, in numbers: 1,500,000 rupiah at 0.0000633 and at 0.00007."""
    assert (to_usd_cents(1_500_000, "IDR", "0.0000633"), to_usd_cents(1_500_000, "IDR", "0.00007")) == (9495, 10500)
    assert (to_usd_cents(12_345, "KWD", "3.25"), to_usd_cents(12_345, "KWD", "3.3")) == (4012, 4074)


def _sandbox_events(host: Any) -> List[Dict[str, Any]]:
    return sandbox_of(host).dispatcher.events()


def _post_event(host: Any, envelope: Dict[str, Any]) -> Any:
    body, headers = sign_webhook(envelope, host.app.extensions["havn"].config.webhook_secret)
    return host.app.test_client().post("/havn/webhooks", data=body, headers=headers)


def _failing_claimed_payment(make_host: Any) -> Tuple[Any, int, Any]:
    """A quiet host (events not delivered), a claimed client-mode IDR payment, and HAVN's FAILED answer."""
    host = quiet(make_host)(_client(HAVN_DELIVERY="worker"))
    _, _, b_id, _ = synced_chain(host)
    _move_sandbox_rate(host, "IDR", "0.00007")
    payment_id, _ = _pay(host, b_id, 1_500_000, "IDR")
    with host.app.app_context():
        assert delivery.claim(payment_id, worker_id="w") is True
        state = get_state()
        payment = host.db.session.get(host.havn.models.Payment, payment_id)
        result = send(state, payment)
        assert result.transaction.status == "FAILED"
    return host, payment_id, result


def test_event_first_then_answer_announces_once(make_host: Any) -> None:
    host, payment_id, result = _failing_claimed_payment(make_host)
    (envelope,) = _sandbox_events(host)
    with record_signals(signals.conversion_failed, signals.transaction_failed) as sent:
        assert _post_event(host, envelope).status_code == 200  # the event overtakes the answer
        with host.app.app_context():
            state = get_state()
            payment = host.db.session.get(host.havn.models.Payment, payment_id)
            payment = _record(state, payment, "w", result, None).payment
            assert (payment.delivery_state, payment.claimed_by) == ("conversion_failed", None)
    assert [s.name for s in sent] == ["havn.conversion-failed", "havn.transaction-failed"]
    assert sent[0].kwargs["event"].id == envelope["id"]
    row = _row(host, payment_id)
    assert (row["conversion_verdict"], row["havn_amount_usd"]) == ("failed", 10500)
    assert row["havn_details"]["transaction"]["status"] == "FAILED"  # the answer's record is kept too


def test_answer_first_then_event_announces_once(make_host: Any) -> None:
    host, payment_id, result = _failing_claimed_payment(make_host)
    (envelope,) = _sandbox_events(host)
    with record_signals(signals.conversion_failed, signals.webhook_received) as sent:
        with host.app.app_context():
            state = get_state()
            payment = host.db.session.get(host.havn.models.Payment, payment_id)
            _record(state, payment, "w", result, None).payment
        assert _post_event(host, envelope).status_code == 200
    assert [s.name for s in sent] == ["havn.conversion-failed", "havn.webhook-received"]
    assert sent[0].kwargs["event"] is None and sent[0].kwargs["payment"].id == payment_id
    assert sent[0].kwargs["details"]["server_exchange_rate"] == "0.00007"
    # An explicit replay of the stored event announces again (that is what a replay is for).
    from flask_havn.webhooks import get_receiver

    with record_signals(signals.conversion_failed) as replayed, host.app.test_request_context():
        get_receiver(host.app).replay(envelope["id"])
    assert len(replayed) == 1


def test_a_raising_receiver_undoes_the_verdict_and_the_next_attempt_announces_again(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    _, _, b_id, _ = synced_chain(host)
    _move_sandbox_rate(host, "IDR", "0.00007")
    calls: List[Tuple[int, str]] = []
    lock = threading.Lock()

    def bookkeeping(sender: Any, *, payment: Any, **kwargs: Any) -> None:
        with lock:
            calls.append((payment.id, payment.delivery_state))
            if len(calls) == 1:
                raise RuntimeError("ledger offline")

    signals.conversion_failed.connect(bookkeeping)
    try:
        payment_id, state = _pay(host, b_id, 1_500_000, "IDR")
        assert state == "failed"
        row = _row(host, payment_id)
        assert "conversion_failed receiver raised RuntimeError: ledger offline" in row["last_error"]
        assert (row["conversion_verdict"], row["claimed_by"], row["attempts"]) == (None, None, 1)
        with host.app.app_context():
            payment = delivery.deliver(payment_id)
            assert (payment.delivery_state, payment.attempts) == ("conversion_failed", 2)
    finally:
        signals.conversion_failed.disconnect(bookkeeping)
    assert calls == [(payment_id, "conversion_failed"), (payment_id, "conversion_failed")]
    assert [t["status"] for t in dump(sandbox_of(host))["transactions"]] == ["FAILED"]  # asked twice, stored once


# -- HAVN's 3-entry custom_fields cap, rates, sources -------------------------------------


@pytest.mark.parametrize("fields, says", [
    ({"custom_fields": {"order_id": "42"}}, "your custom_fields add 1 (order_id)"),
    ({"subtotal": 2_000_000}, "takes 4"),
])
def test_client_mode_refuses_what_would_overflow_the_cap_before_anything_is_sent(make_host: Any, fields: Dict[str, Any],
                                                                                 says: str) -> None:
    host = quiet(make_host)(_client())
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context(), pytest.raises(HAVNValidationError) as info:
        host.havn.record_payment(b_id, 1_500_000, "IDR", customer_email="buyer@example.com", **fields)
    assert info.value.field == "custom_fields"
    assert says in info.value.message and 'HAVN_CURRENCY_CONVERSION = "server"' in info.value.message
    assert _count_payments(host) == 0
    assert dump(sandbox_of(host))["counts"]["transactions"] == 0


def test_server_mode_keeps_own_fields_and_subtotal(make_host: Any) -> None:
    host = quiet(make_host)(_client(HAVN_CURRENCY_CONVERSION="server"))
    _, _, b_id, _ = synced_chain(host)
    payment_id, state = _pay(host, b_id, 1_500_000, "IDR", subtotal=2_000_000,
                             custom_fields={"order_id": "42", "plan": "pro", "seats": 3})
    assert state == "sent"
    (txn,) = dump(sandbox_of(host))["transactions"]
    assert (txn["amount"], txn["currency"], txn["amount_usd"]) == (1_500_000, "IDR", 9495)
    assert _row(host, payment_id)["amount_usd"] == 9495


def test_a_usd_payment_has_no_conversion(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    _, _, b_id, _ = synced_chain(host)
    payment_id, state = _pay(host, b_id, 10_000, "USD", custom_fields={"a": 1, "b": 2, "c": 3})
    row = _row(host, payment_id)
    assert (state, row["conversion_mode"], row["amount_usd"], row["conversion_verdict"]) == ("sent", None, None, None)


def test_the_rate_is_fixed_when_recorded_and_every_retry_sends_the_same_payload(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    _, _, b_id, _ = synced_chain(host)
    asked: List[str] = []

    @host.havn.rate_provider
    def provider(currency: str) -> Tuple[str, str]:
        asked.append(currency)
        return ("0.0000633" if len(asked) == 1 else "0.00009"), f"feed #{len(asked)}"

    sandbox_of(host).faults.configure({"seed": 1, "rates": {"drop": 1.0}})  # HAVN stores it, the answer is lost
    payment_id, state = _pay(host, b_id, 1_500_000, "IDR")
    assert state == "failed"
    sandbox_of(host).faults.clear()
    with host.app.app_context():
        payment = delivery.deliver(payment_id)
        assert payment.delivery_state == "sent"  # an identical payload: HAVN replays its answer, no 409
    assert asked == ["IDR"]
    row = _row(host, payment_id)
    assert (row["exchange_rate"], row["exchange_rate_source"], row["amount_usd"]) == ("0.0000633", "feed #1", 9495)
    assert dump(sandbox_of(host))["counts"]["transactions"] == 1


def test_the_provider_may_defer_to_the_table(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    _, _, b_id, _ = synced_chain(host)
    host.havn.rate_provider(lambda currency: ("3.25", "central bank") if currency == "KWD" else None)
    kwd, _ = _pay(host, b_id, 1000, "KWD")
    eur, _ = _pay(host, b_id, 1000, "EUR")
    assert _row(host, kwd)["exchange_rate_source"] == "central bank"
    assert (_row(host, eur)["exchange_rate"], _row(host, eur)["exchange_rate_source"]) == ("1.08", "HAVN_EXCHANGE_RATES")


def test_a_float_from_the_provider_records_nothing(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    _, _, b_id, _ = synced_chain(host)
    host.havn.rate_provider(lambda currency: (0.0000633, "float feed"))
    with host.app.app_context(), pytest.raises(HAVNConfigError, match="not a float"):
        host.havn.record_payment(b_id, 1_500_000, "IDR", customer_email="buyer@example.com")
    assert _count_payments(host) == 0


def test_no_rate_for_the_currency_records_nothing(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context(), pytest.raises(HAVNConfigError, match="no exchange rate for GBP"):
        host.havn.record_payment(b_id, 1000, "GBP", customer_email="buyer@example.com")
    assert _count_payments(host) == 0


def test_an_amount_worth_less_than_a_cent_is_refused(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context(), pytest.raises(HAVNValidationError) as info:
        host.havn.record_payment(b_id, 5, "IDR", customer_email="buyer@example.com")
    assert info.value.field == "amount" and "is 0 USD cents at 0.0000633 USD per IDR" in info.value.message
    assert _count_payments(host) == 0


def test_an_unknown_currency_is_refused_listing_the_accepted_ones(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context(), pytest.raises(HAVNValidationError) as info:
        host.havn.record_payment(b_id, 1000, "XAU", customer_email="buyer@example.com")
    assert info.value.field == "currency" and "'XAU' is not a currency HAVN accepts" in info.value.message
    assert "KWD" in info.value.message


def test_rate_provider_must_be_callable(make_host: Any) -> None:
    host = quiet(make_host)(_client())
    with pytest.raises(HAVNConfigError, match="rate_provider needs a function"):
        host.havn.rate_provider("0.0000633")  # type: ignore[arg-type]


# -- over real HTTP --------------------------------------------------------------------------


@pytest.fixture
def live(make_host: Any) -> Iterator[Tuple[Any, SandboxServer, requests.Session]]:
    """A sandbox and a client-mode host, each on its own loopback port; events go over HTTP."""
    with SandboxServer(config={"HAVN_SANDBOX_DELIVERY_SCHEDULE_FACTOR": 0.001, "HAVN_SANDBOX_SEED": 3}) as sandbox:
        host = make_host(http_config(sandbox.url, **_client(
            SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 30}})))
        with SandboxServer(host.app) as host_server, requests.Session() as http:
            answer = http.put(sandbox.url + "/_sandbox/webhook-url", json={"url": host_server.url + "/havn/webhooks"},
                              timeout=10)
            assert answer.status_code == 200
            yield host, sandbox, http


def test_over_http_a_moved_rate_fails_once_and_pays_no_commission(live: Any) -> None:
    host, sandbox, http = live
    _, _, b_id, _ = synced_chain(host)
    accepted, state = _pay(host, b_id, 12_345, "KWD")
    assert state == "sent"
    moved = http.put(sandbox.url + "/_sandbox/rates", json={"KWD": "3.3"}, timeout=10)
    assert moved.status_code == 200 and moved.json()["rates"]["KWD"] == "3.3"
    with record_signals(signals.conversion_failed) as sent:
        refused, state = _pay(host, b_id, 12_345, "KWD")
        assert state == "conversion_failed"
        log = http.get(sandbox.url + "/_sandbox/deliveries", params={"wait": 20}, timeout=30).json()
    assert log["idle"] is True
    assert sorted((d["type"], d["status_code"]) for d in log["deliveries"]) == [
        ("commission.distributed", 200), ("transaction.conversion_failed", 200)]
    assert len(sent) == 1 and sent[0].kwargs["payment"].id == refused
    row = _row(host, refused)
    assert (row["delivery_state"], row["amount_usd"], row["havn_amount_usd"]) == ("conversion_failed", 4012, 4074)
    assert (row["conversion_verdict"], row["commissions"]) == ("failed", [])
    state_dump = http.get(sandbox.url + "/_sandbox/state", timeout=10).json()
    by_status = {t["status"]: t for t in state_dump["transactions"]}
    assert set(by_status) == {"completed", "FAILED"}
    assert {c["transaction_id"] for c in state_dump["commissions"]} == {by_status["completed"]["transaction_id"]}
    assert _row(host, accepted)["havn_amount_usd"] == 4012
    assert Decimal(row["exchange_rate"]) == Decimal("3.25")

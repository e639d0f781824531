"""What verified events do: store once, match and update payments, signals, failures and retries."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any, List, Tuple

import pytest

from flask_havn import signals
from flask_havn.webhook_testing import record_signals
from flask_havn.models import utcnow
from flask_havn.webhooks import RECEIVED_LEASE_SECONDS, get_receiver

from _webhook_helpers import add_payment, config, envelope, event_rows, payment_row, post

EVT = "evt_000000000000000000000001"


@pytest.fixture
def host(make_host: Any) -> Any:
    return make_host(config())


@pytest.fixture
def client(host: Any) -> Any:
    return host.app.test_client()


def _conversion_data(**transaction: Any) -> dict:
    base = {"transaction_id": "txn_91aa", "status": "FAILED", "amount": 1001, "currency": "USD",
            "invoice_id": "INV-77", "payment_gateway_transaction_id": "pi_local_1", "referral_code": "HAVN-MJ-001"}
    base.update(transaction)
    return {"transaction": base, "original_amount": 150000, "original_currency": "IDR", "submitted_amount": 1001,
            "expected_amount": 949, "submitted_exchange_rate": "0.0000667", "server_exchange_rate": "0.0000633",
            "reason": "converted amount does not match server conversion"}


# -- commission.distributed ----------------------------------------------------------


def test_commission_distributed_updates_the_payment_and_signals(host: Any, client: Any) -> None:
    payment_id = add_payment(host)
    with record_signals() as sent:
        response = post(client, envelope())
    assert response.status_code == 200
    row = payment_row(host, payment_id)
    assert row["delivery_state"] == "sent"
    assert row["havn_transaction_id"] == "txn_abc"
    assert [c["commission_id"] for c in row["commissions"]] == ["com_1", "com_2"]
    assert row["commissions"][0]["amount"] == 5000
    assert row["total_commission"] == 8000
    assert row["sent_at"] is not None
    stored = event_rows(host)[EVT]
    assert (stored["status"], stored["payment_id"], stored["attempts"]) == ("processed", payment_id, 1)
    assert stored["type"] == "commission.distributed"
    assert stored["event_created_at"] == "2026-11-27T10:15:30Z"
    assert stored["processed_at"] is not None and stored["last_error"] is None
    assert [s.name for s in sent] == ["havn.commission-distributed", "havn.webhook-received"]
    distributed = sent[0]
    assert distributed.sender is host.app
    assert distributed.kwargs["payment"].id == payment_id
    assert distributed.kwargs["commissions"] == envelope()["data"]["commissions"]
    event = distributed.kwargs["event"]
    assert (event.id, event.type, event.created_at, event.test_mode) == (
        EVT, "commission.distributed", "2026-11-27T10:15:30Z", False)
    assert event.data == envelope()["data"]
    assert sent[1].kwargs == {"event": event}
    assert sent[1].sender is host.app


def test_a_payment_already_sent_keeps_its_sent_at(host: Any, client: Any) -> None:
    from datetime import datetime

    earlier = datetime(2026, 1, 2, 3, 4, 5)
    payment_id = add_payment(host, delivery_state="sent", sent_at=earlier, havn_transaction_id="txn_abc")
    assert post(client, envelope()).status_code == 200
    row = payment_row(host, payment_id)
    assert (row["delivery_state"], row["sent_at"], row["total_commission"]) == ("sent", earlier, 8000)


def test_total_commission_is_summed_when_the_event_has_none(host: Any, client: Any) -> None:
    payment_id = add_payment(host)
    payload = envelope()
    del payload["data"]["total_commission"]
    payload["data"]["commissions"].append("not an object")
    assert post(client, payload).status_code == 200
    row = payment_row(host, payment_id)
    assert row["total_commission"] == 8000
    assert len(row["commissions"]) == 2


@pytest.mark.parametrize("transaction,expected", [
    ({"payment_gateway_transaction_id": "pi_local_2", "invoice_id": "INV-1", "transaction_id": "txn_1"}, 2),
    ({"payment_gateway_transaction_id": "pi_unknown", "invoice_id": "INV-1", "transaction_id": "txn_2"}, 1),
    ({"invoice_id": "INV-unknown", "transaction_id": "txn_2"}, 2),
    ({"payment_gateway_transaction_id": 42, "invoice_id": ["INV-1"], "transaction_id": "txn_2"}, 2),
    ({"payment_gateway_transaction_id": "pi_unknown", "invoice_id": "INV-x", "transaction_id": "txn_x"}, None),
    ({}, None),
])
def test_matching_order_gateway_id_then_invoice_then_transaction_id(
        host: Any, client: Any, transaction: dict, expected: Any) -> None:
    ids = {1: add_payment(host, payment_gateway_transaction_id="pi_local_1", invoice_id="INV-1",
                          havn_transaction_id="txn_1"),
           2: add_payment(host, payment_gateway_transaction_id="pi_local_2", invoice_id="INV-2",
                          havn_transaction_id="txn_2")}
    with record_signals(signals.commission_distributed) as sent:
        response = post(client, envelope(data={"transaction": transaction, "commissions": []}))
    assert response.status_code == 200
    matched = sent[0].kwargs["payment"]
    assert (matched.id if matched is not None else None) == (ids[expected] if expected else None)
    assert event_rows(host)[EVT]["payment_id"] == (ids[expected] if expected else None)
    for number, payment_id in ids.items():
        state = payment_row(host, payment_id)["delivery_state"]
        assert state == ("sent" if number == expected else "pending")


def test_an_ambiguous_invoice_matches_nothing(host: Any, client: Any) -> None:
    first = add_payment(host, payment_gateway_transaction_id="pi_a", invoice_id="INV-SAME")
    second = add_payment(host, payment_gateway_transaction_id="pi_b", invoice_id="INV-SAME")
    with record_signals(signals.commission_distributed) as sent:
        post(client, envelope(data={"transaction": {"invoice_id": "INV-SAME"}, "commissions": []}))
    assert sent[0].kwargs["payment"] is None
    assert {payment_row(host, first)["delivery_state"], payment_row(host, second)["delivery_state"]} == {"pending"}


def test_an_event_for_an_unknown_payment_is_stored_and_signalled(host: Any, client: Any) -> None:
    with record_signals() as sent:
        assert post(client, envelope()).status_code == 200
    assert event_rows(host)[EVT]["status"] == "processed"
    assert event_rows(host)[EVT]["payment_id"] is None
    assert sent[0].kwargs["payment"] is None
    assert len(sent) == 2


def test_a_known_type_with_odd_data_does_not_crash(host: Any, client: Any) -> None:
    add_payment(host)
    payload = envelope(data={"transaction": "pi_local_1", "commissions": {"a": 1}, "total_commission": "8000"})
    with record_signals(signals.commission_distributed) as sent:
        assert post(client, payload).status_code == 200
    assert sent[0].kwargs["payment"] is None
    assert sent[0].kwargs["commissions"] == []


# -- transaction.conversion_failed ---------------------------------------------------------


def test_conversion_failed_marks_the_payment_and_signals(host: Any, client: Any) -> None:
    payment_id = add_payment(host, currency="IDR", amount=150000)
    with record_signals() as sent:
        response = post(client, envelope("transaction.conversion_failed", data=_conversion_data()))
    assert response.status_code == 200
    row = payment_row(host, payment_id)
    assert row["delivery_state"] == "conversion_failed"
    assert row["last_error"] == "converted amount does not match server conversion"
    assert row["havn_details"] == {
        "reason": "converted amount does not match server conversion", "original_amount": 150000,
        "original_currency": "IDR", "submitted_amount": 1001, "expected_amount": 949,
        "submitted_exchange_rate": "0.0000667", "server_exchange_rate": "0.0000633"}
    assert row["havn_transaction_id"] == "txn_91aa"
    assert row["commissions"] is None
    assert [s.name for s in sent] == ["havn.conversion-failed", "havn.webhook-received"]
    assert sent[0].kwargs["reason"] == "converted amount does not match server conversion"
    assert sent[0].kwargs["payment"].id == payment_id
    assert sent[0].sender is host.app


def test_conversion_failed_matches_by_invoice(host: Any, client: Any) -> None:
    payment_id = add_payment(host, invoice_id="INV-77", payment_gateway_transaction_id="pi_other")
    data = _conversion_data(payment_gateway_transaction_id="mt_5521")
    assert post(client, envelope("transaction.conversion_failed", data=data)).status_code == 200
    assert payment_row(host, payment_id)["delivery_state"] == "conversion_failed"


# -- unknown types -----------------------------------------------------------------------


def test_an_unknown_type_is_ignored_with_only_webhook_received(host: Any, client: Any) -> None:
    payment_id = add_payment(host)
    payload = envelope("commission.reversed", data=envelope()["data"])
    with record_signals() as sent:
        response = post(client, payload)
    assert response.status_code == 200
    assert response.get_json()["status"] == "ignored"
    assert event_rows(host)[EVT]["status"] == "ignored"
    assert [s.name for s in sent] == ["havn.webhook-received"]
    assert sent[0].kwargs["event"].type == "commission.reversed"
    assert payment_row(host, payment_id)["delivery_state"] == "pending"


def test_test_mode_is_kept(host: Any, client: Any) -> None:
    with record_signals(signals.webhook_received) as sent:
        post(client, {**envelope(), "test_mode": True})
    assert sent[0].kwargs["event"].test_mode is True
    assert event_rows(host)[EVT]["test_mode"] is True


# -- exactly once -------------------------------------------------------------------------


def test_the_same_event_twice_sends_one_signal(host: Any, client: Any) -> None:
    payment_id = add_payment(host)
    with record_signals() as sent:
        first = post(client, envelope())
        second = post(client, envelope())
        third = post(client, envelope("transaction.conversion_failed", data=_conversion_data()))
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]
    assert second.get_json() == {"received": True, "id": EVT, "status": "processed", "duplicate": True}
    assert [s.name for s in sent] == ["havn.commission-distributed", "havn.webhook-received"]
    assert event_rows(host)[EVT]["attempts"] == 1
    # The third delivery reused the id: it changed nothing, even with another type.
    assert payment_row(host, payment_id)["delivery_state"] == "sent"


def test_an_ignored_event_repeated_does_nothing(host: Any, client: Any) -> None:
    with record_signals() as sent:
        post(client, envelope("x.unknown", data={}))
        post(client, envelope("x.unknown", data={}))
    assert len(sent) == 1


def _left_received(host: Any, age: timedelta) -> datetime:
    """Store the event as ``received`` (a delivery claimed it) ``age`` ago; return that time."""
    claimed_at = utcnow() - age
    with host.app.app_context():
        model = host.havn.models.WebhookEvent
        host.db.session.add(model(id=EVT, type="commission.distributed", payload=envelope(), status="received",
                                  attempts=1, received_at=claimed_at))
        host.db.session.commit()
    return claimed_at


@pytest.mark.parametrize("age", [timedelta(0), timedelta(seconds=RECEIVED_LEASE_SECONDS - 5)])
def test_an_event_in_hand_elsewhere_is_answered_200_without_processing(host: Any, client: Any,
                                                                      age: timedelta) -> None:
    """A row ``received`` within the lease means another delivery is processing it right now."""
    payment_id = add_payment(host)
    claimed_at = _left_received(host, age)
    with record_signals() as sent:
        response = post(client, envelope())
    assert response.status_code == 200
    assert response.get_json()["duplicate"] is True
    assert sent == []
    stored = event_rows(host)[EVT]
    assert (stored["status"], stored["attempts"], stored["received_at"]) == ("received", 1, claimed_at)
    assert payment_row(host, payment_id)["delivery_state"] == "pending"


def test_an_event_left_received_past_the_lease_is_taken_over_and_processed_once(host: Any, client: Any) -> None:
    """Its processor died mid-way (or could not record the failure): a redelivery processes it."""
    assert RECEIVED_LEASE_SECONDS == 600
    payment_id = add_payment(host)
    claimed_at = _left_received(host, timedelta(seconds=RECEIVED_LEASE_SECONDS + 60))
    with record_signals() as sent:
        first = post(client, envelope())
        second = post(client, envelope())
    assert first.status_code == 200
    assert first.get_json() == {"received": True, "id": EVT, "status": "processed", "duplicate": False}
    assert second.get_json()["duplicate"] is True
    assert [s.name for s in sent] == ["havn.commission-distributed", "havn.webhook-received"]
    stored = event_rows(host)[EVT]
    assert (stored["status"], stored["attempts"], stored["payment_id"]) == ("processed", 2, payment_id)
    assert stored["received_at"] > claimed_at + timedelta(seconds=RECEIVED_LEASE_SECONDS)
    assert payment_row(host, payment_id)["delivery_state"] == "sent"


def _waits_long(database: Any) -> dict:
    """Engine options under which a delivery waiting for another one's transaction does not give up."""
    return {} if database else {"SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"timeout": 60}}}


def _deliver_while_the_first_is_inside(host: Any, payload: dict, receiver_signal: Any) -> Tuple[Any, List[Any]]:
    """Deliver ``payload`` twice, the second while the first is inside a receiver of ``receiver_signal``.

    Returns the second delivery's answer and what the first's receiver saw:
    whether the second had been answered while it waited (it must not have).
    """
    inside, release = threading.Event(), threading.Event()
    seen: List[Any] = []
    second: List[Any] = []

    def hold(sender: Any, **kwargs: Any) -> None:
        inside.set()
        # The second delivery is under way now: it must still be waiting for this transaction to end.
        seen.append(release.wait(timeout=0.5) or bool(second))

    def deliver_second() -> None:
        assert inside.wait(timeout=30)
        second.append(post(host.app.test_client(), payload))
        release.set()

    receiver_signal.connect(hold, sender=host.app, weak=False)
    thread = threading.Thread(target=deliver_second)
    thread.start()
    try:
        first = post(host.app.test_client(), payload)
    finally:
        release.set()
        receiver_signal.disconnect(hold, sender=host.app)
        thread.join(timeout=60)
    assert first.status_code == 200 and first.get_json()["duplicate"] is False
    return second[0], seen


def test_a_retry_of_a_failed_event_holds_its_id_until_it_ends(make_host: Any, database: Any) -> None:
    """A redelivery while a retry of a ``failed`` event processes waits for it, then is a duplicate."""
    host = make_host(config(**_waits_long(database)), database=database)
    with host.app.app_context():
        model = host.havn.models.WebhookEvent
        host.db.session.add(model(id=EVT, type="commission.distributed", payload=envelope(), status="failed",
                                  attempts=1, received_at=utcnow() - timedelta(days=3)))
        host.db.session.commit()
    with record_signals(signals.commission_distributed) as sent:
        second, seen = _deliver_while_the_first_is_inside(host, envelope(), signals.webhook_received)
    assert seen == [False]
    assert second.status_code == 200
    assert second.get_json() == {"received": True, "id": EVT, "status": "processed", "duplicate": True}
    assert len(sent) == 1
    stored = event_rows(host)[EVT]
    assert (stored["status"], stored["attempts"]) == ("processed", 2)
    assert stored["received_at"] > utcnow() - timedelta(minutes=1)


def test_two_threads_delivering_one_id_at_once_process_it_once(make_host: Any, database: Any) -> None:
    host = make_host(config(**_waits_long(database)), database=database)
    payment_id = add_payment(host)
    barrier = threading.Barrier(2)
    answers: List[Any] = []
    errors: List[BaseException] = []

    def deliver() -> None:
        try:
            client = host.app.test_client()
            barrier.wait(timeout=30)
            response = post(client, envelope())
            answers.append((response.status_code, response.get_json()["duplicate"]))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with record_signals() as sent:
        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert sorted(answers) == [(200, False), (200, True)]
    assert [s.name for s in sent] == ["havn.commission-distributed", "havn.webhook-received"]
    assert event_rows(host)[EVT]["attempts"] == 1
    assert event_rows(host)[EVT]["status"] == "processed"
    assert payment_row(host, payment_id)["delivery_state"] == "sent"


def test_a_duplicate_arriving_while_the_first_is_processing_waits_then_does_nothing(make_host: Any, database: Any) -> None:
    """Deterministic overlap: the first delivery's receiver holds on while the second is under way."""
    host = make_host(config(**_waits_long(database)), database=database)
    with record_signals(signals.webhook_received) as sent:
        second, seen = _deliver_while_the_first_is_inside(host, envelope("x.slow", data={}),
                                                          signals.webhook_received)
    assert seen == [False]
    assert second.status_code == 200
    assert second.get_json() == {"received": True, "id": EVT, "status": "ignored", "duplicate": True}
    assert [s.kwargs["event"].id for s in sent] == [EVT]
    assert event_rows(host)[EVT]["status"] == "ignored"
    assert event_rows(host)[EVT]["attempts"] == 1


# -- a raising receiver ---------------------------------------------------------------------


def test_a_raising_receiver_rolls_back_answers_500_and_the_retry_processes_once(host: Any, client: Any) -> None:
    payment_id = add_payment(host)
    calls: List[str] = []

    def flaky(sender: Any, event: Any, payment: Any, commissions: Any) -> None:
        calls.append(event.id)
        payment.customer_id = "written-by-receiver"
        if len(calls) == 1:
            raise RuntimeError("ledger service is down")

    signals.commission_distributed.connect(flaky, weak=False)
    try:
        with record_signals(signals.webhook_received) as received:
            failed = post(client, envelope())
            assert failed.status_code == 500
            assert failed.get_json()["error"] == "processing_failed"
            assert "ledger" not in failed.get_data(as_text=True)
            stored = event_rows(host)[EVT]
            assert stored["status"] == "failed"
            assert stored["attempts"] == 1
            assert "RuntimeError: ledger service is down" in stored["last_error"]
            assert "Traceback" in stored["last_error"]
            row = payment_row(host, payment_id)
            # The local changes (ours and the receiver's) were rolled back.
            assert (row["delivery_state"], row["commissions"], row["customer_id"]) == ("pending", None, None)
            assert received == []

            retried = post(client, envelope())
            assert retried.status_code == 200
            assert retried.get_json()["duplicate"] is False
            again = post(client, envelope())
            assert again.get_json()["duplicate"] is True
    finally:
        signals.commission_distributed.disconnect(flaky)
    assert calls == [EVT, EVT]
    assert [s.kwargs["event"].id for s in received] == [EVT]
    stored = event_rows(host)[EVT]
    assert (stored["status"], stored["attempts"], stored["last_error"]) == ("processed", 2, None)
    row = payment_row(host, payment_id)
    assert (row["delivery_state"], row["customer_id"]) == ("sent", "written-by-receiver")


def test_a_raising_webhook_received_receiver_also_fails_unknown_types(host: Any, client: Any) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise ValueError("nope")

    signals.webhook_received.connect(broken, weak=False)
    try:
        assert post(client, envelope("x.unknown", data={})).status_code == 500
    finally:
        signals.webhook_received.disconnect(broken)
    assert event_rows(host)[EVT]["status"] == "failed"
    assert post(client, envelope("x.unknown", data={})).status_code == 200
    assert event_rows(host)[EVT]["status"] == "ignored"


def test_receivers_writes_commit_with_the_event(host: Any, client: Any) -> None:
    payment_id = add_payment(host)

    def note(sender: Any, event: Any, payment: Any, commissions: Any) -> None:
        payment.customer_email = "paid@example.com"

    signals.commission_distributed.connect(note, weak=False)
    try:
        assert post(client, envelope()).status_code == 200
    finally:
        signals.commission_distributed.disconnect(note)
    assert payment_row(host, payment_id)["customer_email"] == "paid@example.com"


def test_receivers_connected_to_another_app_do_not_fire(host: Any, make_host: Any) -> None:
    other = make_host(config())
    fired: List[Any] = []

    def on_other(sender: Any, **kwargs: Any) -> None:
        fired.append(sender)

    signals.webhook_received.connect(on_other, sender=other.app, weak=False)
    try:
        assert post(host.app.test_client(), envelope()).status_code == 200
        assert fired == []
        assert post(other.app.test_client(), envelope()).status_code == 200
        assert fired == [other.app]
    finally:
        signals.webhook_received.disconnect(on_other, sender=other.app)


# -- replay ------------------------------------------------------------------------------


def test_replay_processes_a_stored_event_again(host: Any, client: Any) -> None:
    payment_id = add_payment(host)
    post(client, envelope())
    with host.app.app_context():
        host.db.session.get(host.havn.models.Payment, payment_id).delivery_state = "pending"
        host.db.session.commit()
        with record_signals() as sent:
            outcome = get_receiver().replay(EVT)
    assert (outcome.status_code, outcome.event_status, outcome.duplicate) == (200, "processed", False)
    assert [s.name for s in sent] == ["havn.commission-distributed", "havn.webhook-received"]
    assert payment_row(host, payment_id)["delivery_state"] == "sent"
    assert event_rows(host)[EVT]["attempts"] == 2


def test_replay_of_an_unknown_id_raises_lookup_error(host: Any) -> None:
    with host.app.app_context():
        with pytest.raises(LookupError, match="flask havn webhooks"):
            get_receiver().replay("evt_nope")


def test_a_storage_failure_is_answered_500_json_so_the_sender_retries(host: Any, client: Any) -> None:
    import sqlalchemy as sa

    with host.app.app_context():
        host.db.session.execute(sa.text("DROP TABLE havn_webhook_events"))
        host.db.session.commit()
    with record_signals() as sent:
        response = post(client, envelope())
    assert response.status_code == 500
    assert response.get_json()["error"] == "storage_failed"
    assert sent == []


# -- the payment as an ORM row only when a receiver gets it ------------------------------------


@pytest.mark.parametrize("event_type", ["commission.distributed", "transaction.conversion_failed"])
def test_with_or_without_a_receiver_of_the_payment_the_row_ends_the_same(make_host: Any, event_type: str) -> None:
    """Without a receiver the payment is read as plain columns; the row written must not differ."""
    data = envelope()["data"] if event_type == "commission.distributed" else _conversion_data(
        payment_gateway_transaction_id="pi_local_1")
    signal = signals.commission_distributed if event_type == "commission.distributed" else signals.conversion_failed
    rows, handed = [], []
    for connect in (False, True):
        host = make_host(config())
        payment_id = add_payment(host, conversion_mode="server", havn_details={"kept": "from before"})

        def receiver(sender: Any, payment: Any, **kwargs: Any) -> None:
            handed.append(type(payment).__name__)

        if connect:
            signal.connect(receiver, sender=host.app, weak=False)
        try:
            assert post(host.app.test_client(), envelope(event_type, data=data)).status_code == 200
        finally:
            signal.disconnect(receiver, sender=host.app)
        row = payment_row(host, payment_id)
        assert row["updated_at"] is not None
        rows.append({k: v for k, v in row.items() if k not in ("sent_at", "updated_at", "created_at")})
        assert event_rows(host)[EVT]["payment_id"] == payment_id
    assert handed == ["HAVNPayment"]
    assert rows[0] == rows[1]
    assert rows[0]["delivery_state"] == ("sent" if event_type == "commission.distributed" else "conversion_failed")


def test_an_event_repeating_what_delivery_recorded_writes_nothing_to_the_payment(host: Any, client: Any) -> None:
    """The usual commission.distributed follows HAVN's synchronous answer: the row is already right."""
    from datetime import datetime

    data = envelope()["data"]
    payment_id = add_payment(host, delivery_state="sent", sent_at=datetime(2026, 1, 2, 3, 4, 5),
                             havn_transaction_id="txn_abc", commissions=data["commissions"],
                             total_commission=data["total_commission"])
    before = payment_row(host, payment_id)
    with record_signals(signals.commission_distributed) as sent:
        assert post(client, envelope()).status_code == 200
    assert payment_row(host, payment_id) == before  # updated_at included: no UPDATE ran
    assert sent[0].kwargs["payment"].id == payment_id
    assert event_rows(host)[EVT]["payment_id"] == payment_id

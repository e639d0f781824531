"""Hostile, validly signed events: a 400 once (nothing stored, no signal) instead of a 500 on every retry,
on SQLite and PostgreSQL; and a test-mode event never changes a live payment."""
from __future__ import annotations

import json
import threading
from typing import Any, Callable, Dict, List

import pytest

from flask_havn import rules, signals
from flask_havn.webhook_testing import record_signals, sign_webhook
from flask_havn.webhooks import get_receiver

from _hostile_helpers import UNSTORABLE, deep, width
from _webhook_helpers import PATH, SECRET, add_payment, config, envelope, event_rows, payment_row, post

NOW = 1_800_000_000
EVT = "evt_000000000000000000000001"


@pytest.fixture
def host(make_host: Any, database: Any) -> Any:
    host = make_host(config(), database=database)
    get_receiver(host.app).clock = lambda: float(NOW)
    return host


def _post_text(host: Any, text: str) -> Any:
    body, headers = sign_webhook(text, SECRET, msg_id=EVT, timestamp=NOW)
    return host.app.test_client().post(PATH, data=body, headers=headers)


def _assert_refused_every_time(host: Any, send: Any, payment_id: int) -> None:
    """Two deliveries (the sender's retry), each 400 ``invalid_payload``; nothing stored, sent or changed."""
    before = payment_row(host, payment_id)
    with record_signals() as sent:
        for _ in range(2):
            response = send()
            assert response.status_code == 400, response.get_json()
            assert response.get_json() == {"error": "invalid_payload", "message": "invalid payload"}
    assert event_rows(host) == {}
    assert sent == []
    assert payment_row(host, payment_id) == before


def _in_a_fresh_thread(call: Callable[[], Any]) -> Any:
    """``call()`` on a new thread, whose stack starts empty like a server's worker thread.

    Python's recursion limit counts frames: under pytest's own ~100 frames a
    body fails to parse sooner than it would in a server, which hides the
    window (about 950 to 985 levels) where it parses and then fails to store.
    """
    result: List[Any] = []
    errors: List[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # pragma: no cover - re-raised below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


@pytest.mark.parametrize("depth", [rules.MAX_JSON_DEPTH, 955, 965, 975, 100_000])
def test_an_event_nested_too_deep_is_400_not_500_on_every_retry(host: Any, depth: int) -> None:
    payment_id = add_payment(host)
    payload = envelope()
    payload["data"]["note"] = "DEEP"
    text = json.dumps(payload).replace('"DEEP"', deep(depth))
    _assert_refused_every_time(host, lambda: _in_a_fresh_thread(lambda: _post_text(host, text)), payment_id)


def test_an_event_exactly_as_deep_as_allowed_is_processed(host: Any) -> None:
    payment_id = add_payment(host)
    payload = envelope()
    payload["data"]["note"] = "DEEP"
    text = json.dumps(payload).replace('"DEEP"', deep(rules.MAX_JSON_DEPTH - 2))  # envelope + data + note
    assert rules.json_depth(text) == rules.MAX_JSON_DEPTH
    assert _post_text(host, text).status_code == 200
    assert event_rows(host)[EVT]["status"] == "processed"
    assert payment_row(host, payment_id)["delivery_state"] == "sent"


def test_a_transaction_id_wider_than_its_column_is_400(host: Any) -> None:
    payment_id = add_payment(host)
    limit = width(host.models.Payment, "havn_transaction_id")
    payload = envelope()
    payload["data"]["transaction"]["transaction_id"] = "t" * (limit + 1)
    _assert_refused_every_time(host, lambda: post(host.app.test_client(), payload, timestamp=NOW), payment_id)


def test_a_transaction_id_as_wide_as_its_column_is_stored(host: Any) -> None:
    payment_id = add_payment(host)
    txn = "t" * width(host.models.Payment, "havn_transaction_id")
    payload = envelope()
    payload["data"]["transaction"]["transaction_id"] = txn
    assert post(host.app.test_client(), payload, timestamp=NOW).status_code == 200
    assert payment_row(host, payment_id)["havn_transaction_id"] == txn


@pytest.mark.parametrize("column", ["id", "type", "event_created_at"])
def test_envelope_texts_wider_than_their_column_are_400(host: Any, column: str) -> None:
    payment_id = add_payment(host)
    too_wide = "e" * (width(host.models.WebhookEvent, column) + 1)
    payload = envelope()
    key = {"event_created_at": "created_at"}.get(column, column)
    payload[key] = too_wide
    msg_id = too_wide if column == "id" else EVT
    _assert_refused_every_time(
        host, lambda: post(host.app.test_client(), payload, msg_id=msg_id, timestamp=NOW), payment_id)


def _with_text(place: str, text: str) -> Dict[str, Any]:
    """An event carrying ``text`` at ``place``: a column-bound one (``reason`` → ``last_error``,
    ``transaction_id``) or one kept only in the event's JSON (a commission's code, a key of ``data``)."""
    if place == "reason":
        return envelope("transaction.conversion_failed", data={
            "transaction": {"payment_gateway_transaction_id": "pi_local_1", "status": "FAILED"}, "reason": text})
    payload = envelope()
    if place == "transaction_id":
        payload["data"]["transaction"]["transaction_id"] = text
    elif place == "referral_code":
        payload["data"]["commissions"][0]["referral_code"] = text
    else:
        payload["data"]["extra"] = {text: 1}
    return payload


@pytest.mark.parametrize("place", ["reason", "transaction_id", "referral_code", "key"])
def test_a_lone_surrogate_anywhere_is_400(host: Any, place: str) -> None:
    payment_id = add_payment(host)
    text = json.dumps(_with_text(place, UNSTORABLE["surrogate"]))  # ASCII with \u escapes: valid JSON
    _assert_refused_every_time(host, lambda: _post_text(host, text), payment_id)


@pytest.mark.parametrize("place", ["reason", "transaction_id"])
def test_a_nul_bound_for_a_text_column_is_400(host: Any, place: str) -> None:
    payment_id = add_payment(host)
    text = json.dumps(_with_text(place, UNSTORABLE["nul"]))
    _assert_refused_every_time(host, lambda: _post_text(host, text), payment_id)


@pytest.mark.parametrize("place", ["referral_code", "key"])
def test_a_nul_kept_only_in_the_event_json_is_stored_and_applied(host: Any, place: str) -> None:
    payment_id = add_payment(host)
    payload = _with_text(place, UNSTORABLE["nul"])
    assert post(host.app.test_client(), payload, timestamp=NOW).status_code == 200
    stored = event_rows(host)[EVT]
    assert (stored["status"], stored["payload"]["data"]) == ("processed", payload["data"])
    assert payment_row(host, payment_id)["commissions"] == payload["data"]["commissions"]


# -- test mode ------------------------------------------------------------------------------------


def _events_with_payment(sent: List[Any]) -> List[Any]:
    return [s.kwargs["payment"] for s in sent if s.name == "havn.commission-distributed"]


@pytest.mark.parametrize("event_type", ["commission.distributed", "transaction.conversion_failed"])
def test_a_test_mode_event_never_changes_a_live_payment(host: Any, event_type: str) -> None:
    payment_id = add_payment(host, delivery_state="sent", havn_transaction_id="txn_real", total_commission=900,
                             commissions=[{"commission_id": "com_real", "amount": 900}])
    before = payment_row(host, payment_id)
    payload = envelope(event_type)
    payload["test_mode"] = True
    if event_type != "commission.distributed":
        payload["data"] = {"transaction": dict(payload["data"]["transaction"], status="FAILED"),
                           "reason": "converted amount does not match server conversion"}
    with record_signals(signals.commission_distributed, signals.conversion_failed) as sent:
        response = post(host.app.test_client(), payload, timestamp=NOW)
    assert response.status_code == 200
    assert payment_row(host, payment_id) == before
    stored = event_rows(host)[EVT]
    assert (stored["status"], stored["test_mode"], stored["payment_id"]) == ("processed", True, None)
    assert [s.kwargs["payment"] for s in sent] == [None]  # signalled as an event about no payment of ours


def test_a_test_mode_event_changes_a_test_mode_payment(host: Any) -> None:
    payment_id = add_payment(host, test_mode=True)
    payload: Dict[str, Any] = envelope()
    payload["test_mode"] = True
    with record_signals(signals.commission_distributed) as sent:
        assert post(host.app.test_client(), payload, timestamp=NOW).status_code == 200
    row = payment_row(host, payment_id)
    assert (row["delivery_state"], row["total_commission"], row["havn_transaction_id"]) == ("sent", 8000, "txn_abc")
    assert [p.id for p in _events_with_payment(sent)] == [payment_id]
    assert event_rows(host)[EVT]["payment_id"] == payment_id


def test_payments_recorded_in_test_mode_are_marked(make_host: Any, database: Any) -> None:
    from _projects_helpers import quiet

    for test_mode in (False, True):
        host = quiet(make_host)({"HAVN_TEST_MODE": test_mode}, database=database)
        with host.app.app_context():
            project = host.havn.create_project("Platform revenue")  # no upline: nothing to sync first
            payment = host.havn.record_payment(project, 1000, customer_email="c@example.com")
            assert (payment.test_mode, payment.delivery_state) == (test_mode, "sent")
            host.db.session.remove()

"""flask_havn.events: the envelope parser and payment updates, without Flask or HTTP."""
from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from flask_havn.events import EnvelopeError, Event, apply_event, commissions_of, parse_envelope, reason_of


def _body(**overrides: Any) -> bytes:
    envelope = {"id": "evt_1", "type": "commission.distributed", "created_at": "2026-11-27T10:15:30Z",
                "test_mode": False, "data": {"k": "v"}}
    envelope.update(overrides)
    return json.dumps(envelope).encode()


def test_parse_envelope_builds_the_event() -> None:
    event = parse_envelope(_body(), expected_id="evt_1")
    assert (event.id, event.type, event.created_at, event.test_mode, event.data) == (
        "evt_1", "commission.distributed", "2026-11-27T10:15:30Z", False, {"k": "v"})
    assert event.envelope["data"] == {"k": "v"}


def test_optional_envelope_fields_default() -> None:
    event = parse_envelope(json.dumps({"id": "e", "type": "t", "data": {}}).encode())
    assert (event.created_at, event.test_mode) == (None, False)
    assert parse_envelope(_body(test_mode=None)).test_mode is False


def test_repr_hides_the_data() -> None:
    event = parse_envelope(_body(data={"customer_email": "secret@example.com"}))
    assert "secret@example.com" not in repr(event)
    assert "evt_1" in repr(event)


@pytest.mark.parametrize("body,needle", [
    (b"[1]", "not a JSON object"),
    (b"\xc3\x28", "not UTF-8 JSON"),
    (json.dumps({"id": "evt_1", "type": "t"}).encode(), "lacks data"),
    (json.dumps({"data": {}}).encode(), "lacks id, type"),
    (_body(id="evt_2"), "differs from the webhook-id"),
    (_body(data=[1]), "data must be a JSON object"),
    (_body(test_mode=1), "test_mode"),
    (b'{"id": "evt_1", "type": "t", "data": {}, "x": -Infinity}', "not UTF-8 JSON"),
    (_body(data={"total_commission": 10 ** 30}), "total_commission must be an amount from 0"),
    (_body(data={"commissions": [{"amount": -1}]}), "commissions.amount must be an amount"),
    (_body(data={"transaction": {"amount_usd": 2 ** 63}}), "transaction.amount_usd must be an amount"),
    (_body(data={"original_amount": -3}), "original_amount must be an amount"),
    (_body(extra=[[{"x": 10 ** 40}]]), "fit in 64 bits"),
])
def test_parse_envelope_refuses_with_a_reason(body: bytes, needle: str) -> None:
    with pytest.raises(EnvelopeError, match=needle):
        parse_envelope(body, expected_id="evt_1")


def test_from_envelope_on_a_non_dict() -> None:
    with pytest.raises(EnvelopeError):
        Event.from_envelope(["evt_1"])


def _payment(**fields: Any) -> Any:
    base = dict(delivery_state="pending", havn_transaction_id=None, commissions=None, total_commission=None,
                sent_at=None, next_attempt_at=datetime(2026, 1, 1), havn_details=None, last_error=None)
    base.update(fields)
    return SimpleNamespace(**base)


def test_apply_commission_distributed() -> None:
    now = datetime(2026, 11, 27, 10, 0, 0)
    payment = _payment(delivery_state="failed")
    event = Event.from_envelope({"id": "e", "type": "commission.distributed", "data": {
        "transaction": {"transaction_id": "txn_1"},
        "commissions": [{"amount": 5000}, {"amount": 3000}, 7], "total_commission": 8000}})
    apply_event(event, payment, now)
    assert (payment.delivery_state, payment.havn_transaction_id, payment.total_commission, payment.sent_at) == (
        "sent", "txn_1", 8000, now)
    assert payment.commissions == [{"amount": 5000}, {"amount": 3000}]
    assert payment.next_attempt_at is None


def test_apply_conversion_failed_without_reason_uses_a_generic_one() -> None:
    payment = _payment(havn_transaction_id="txn_mine")
    event = Event.from_envelope({"id": "e", "type": "transaction.conversion_failed",
                                 "data": {"transaction": {"transaction_id": "txn_other"}, "expected_amount": 949}})
    apply_event(event, payment, datetime(2026, 1, 1))
    assert payment.delivery_state == "conversion_failed"
    assert payment.last_error == "conversion failed at HAVN"
    assert payment.havn_details["expected_amount"] == 949
    assert payment.havn_details["reason"] == "conversion failed at HAVN"
    assert payment.havn_transaction_id == "txn_mine"


def test_apply_unknown_type_changes_nothing() -> None:
    payment = _payment()
    apply_event(Event.from_envelope({"id": "e", "type": "x", "data": {"transaction": {}}}), payment,
                datetime(2026, 1, 1))
    assert payment == _payment()


def test_helpers_tolerate_odd_data() -> None:
    assert commissions_of({"commissions": "x"}) == []
    assert reason_of({"reason": ""}) == "conversion failed at HAVN"
    assert reason_of({"reason": "bad rate"}) == "bad rate"


@pytest.mark.parametrize("value, refused", [
    ("12345678901234567890", True),            # wider than 64 bits
    ("-9223372036854775809", True),
    ("9223372036854775807", False),            # the widest that fits: 19 digits, still scanned
    ('"\\ud800"', True),                       # a lone surrogate, escaped
    ('"\\uDFFF x"', True),
    ('"\\ud83d\\ude00"', False),               # a pair: one character
    ('"\\\\ud800"', False),                    # an escaped backslash, then text: no surrogate
    ('"12345678901234567890"', False),         # digits in a string
    ("[1, 2, {\"k\": 3}]", False),
])
def test_the_body_scan_refuses_exactly_what_the_full_walk_refuses(value, refused):
    body = ('{"id": "evt_1", "type": "x.y", "data": {"deep": {"v": %s}}}' % value).encode()
    full_walk_refuses = False
    try:
        Event.from_envelope(json.loads(body))
    except EnvelopeError:
        full_walk_refuses = True
    assert full_walk_refuses is refused
    if refused:
        with pytest.raises(EnvelopeError):
            parse_envelope(body)
    else:
        assert parse_envelope(body).data == json.loads(body)["data"]

"""flask_havn.webhook_testing: sign_webhook, record_signals, sample_event."""
from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from flask_havn import signals
from flask_havn.errors import WebhookVerificationError
from flask_havn.events import parse_envelope
from flask_havn.signing import verify_webhook
from flask_havn.webhook_testing import ALL_SIGNALS, record_signals, sample_event, sign_webhook

from _webhook_helpers import add_payment, config, event_rows, payment_row, post


def test_sign_webhook_fills_the_envelope_and_verifies() -> None:
    body, headers = sign_webhook({"type": "commission.distributed", "data": {"a": 1}}, "s3cret")
    envelope = json.loads(body)
    assert re.fullmatch(r"evt_[A-Za-z0-9_-]{24}", envelope["id"])
    assert headers["webhook-id"] == envelope["id"]
    assert envelope["test_mode"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", envelope["created_at"])
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 3600
    assert headers["Content-Type"] == "application/json"
    assert verify_webhook(["s3cret"], headers, body) == envelope["id"]
    assert parse_envelope(body, headers["webhook-id"]).data == {"a": 1}


def test_sign_webhook_uses_msg_id_and_timestamp() -> None:
    body, headers = sign_webhook({"type": "t", "data": {}}, "s", msg_id="evt_fixed", timestamp=1_800_000_000)
    assert json.loads(body)["id"] == "evt_fixed"
    assert headers["webhook-id"] == "evt_fixed"
    assert headers["webhook-timestamp"] == "1800000000"
    assert verify_webhook(["s"], headers, body, now=1_800_000_000) == "evt_fixed"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(["other"], headers, body, now=1_800_000_000)


def test_sign_webhook_keeps_a_given_id_and_header_follows_it() -> None:
    body, headers = sign_webhook({"id": "evt_mine", "type": "t", "data": {}}, "s")
    assert headers["webhook-id"] == "evt_mine"
    assert json.loads(body)["id"] == "evt_mine"


def test_sign_webhook_leaves_non_envelopes_alone() -> None:
    body, headers = sign_webhook({"hello": "world"}, "s", msg_id="evt_x")
    assert json.loads(body) == {"hello": "world"}
    raw, raw_headers = sign_webhook(b"[1,2]", "s", msg_id="evt_y", timestamp=5)
    assert raw == b"[1,2]"
    assert verify_webhook(["s"], raw_headers, raw, now=5) == "evt_y"
    text, _ = sign_webhook("ü", "s")
    assert text == "ü".encode("utf-8")


def test_sign_webhook_several_secrets_sign_once_each() -> None:
    body, headers = sign_webhook({"type": "t", "data": {}}, ["old", "new"])
    assert len(headers["webhook-signature"].split()) == 2
    assert verify_webhook(["new"], headers, body)
    assert verify_webhook(["old"], headers, body)


def test_sign_webhook_writes_utf8_not_escapes() -> None:
    body, _ = sign_webhook({"type": "t", "data": {"name": "Zoë 東京"}}, "s")
    assert "Zoë 東京".encode("utf-8") in body


def test_record_signals_records_in_order_and_disconnects() -> None:
    sender = object()
    before = len(signals.webhook_received.receivers)
    with record_signals(signals.webhook_received, signals.conversion_failed) as sent:
        signals.conversion_failed.send(sender, event="e", payment=None, reason="r")
        signals.webhook_received.send(sender, event="e")
        signals.commission_distributed.send(sender, event="e", payment=None, commissions=[])
    assert [(s.name, s.sender, s.kwargs) for s in sent] == [
        ("havn.conversion-failed", sender, {"event": "e", "payment": None, "reason": "r"}),
        ("havn.webhook-received", sender, {"event": "e"}),
    ]
    name, who, kwargs = sent[0]
    assert name == "havn.conversion-failed"
    signals.webhook_received.send(sender, event="after")
    assert len(sent) == 2
    assert len(signals.webhook_received.receivers) == before


def test_record_signals_defaults_to_every_signal_and_disconnects_on_error() -> None:
    assert signals.webhook_received in ALL_SIGNALS and signals.transaction_sent in ALL_SIGNALS
    before = [len(signal.receivers) for signal in ALL_SIGNALS]
    with pytest.raises(RuntimeError):
        with record_signals() as sent:
            signals.transaction_sent.send("app", payment=None, result=None)
            raise RuntimeError("boom")
    assert [s.name for s in sent] == ["havn.transaction-sent"]
    assert [len(signal.receivers) for signal in ALL_SIGNALS] == before


def test_sample_event_without_payment_is_a_valid_unmatched_event() -> None:
    envelope = sample_event("commission.distributed")
    assert envelope["type"] == "commission.distributed"
    data = envelope["data"]
    assert data["total_commission"] == sum(c["amount"] for c in data["commissions"])
    assert [c["level"] for c in data["commissions"]] == [1, 2]
    assert data["commissions"][0]["amount"] == 5000  # 5 % of the default 100000 cents
    assert data["transaction"]["payment_gateway_transaction_id"].startswith("pi_")
    body, headers = sign_webhook(envelope, "s")
    assert parse_envelope(body, headers["webhook-id"]).id == envelope["id"]


def test_sample_conversion_failure_has_a_real_mismatch() -> None:
    data = sample_event("transaction.conversion_failed")["data"]
    assert data["original_currency"] == "IDR"
    assert data["submitted_amount"] != data["expected_amount"]
    assert data["expected_amount"] == 950  # 150000 IDR (no minor unit) at 0.0000633 USD = 949.5 cents, half-up
    assert data["reason"]


def test_sample_event_for_a_payment_is_matched_by_the_receiver(make_host: Any) -> None:
    host = make_host(config())
    payment_id = add_payment(host, currency="EUR", amount=1999, payment_gateway_transaction_id="pi_eur",
                             test_mode=True)  # a test-mode event changes only a test-mode payment
    with host.app.app_context():
        payment = host.db.session.get(host.havn.models.Payment, payment_id)
        envelope = sample_event("commission.distributed", payment=payment, test_mode=True)
    transaction = envelope["data"]["transaction"]
    assert transaction["payment_gateway_transaction_id"] == "pi_eur"
    assert transaction["referral_code"] == "HAVN-MJ-001"
    assert transaction["amount"] == 2159  # 19.99 EUR at 1.08, half-up
    assert envelope["test_mode"] is True
    assert post(host.app.test_client(), envelope).status_code == 200
    assert payment_row(host, payment_id)["delivery_state"] == "sent"
    assert event_rows(host)[envelope["id"]]["payment_id"] == payment_id

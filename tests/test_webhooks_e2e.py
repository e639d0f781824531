"""End to end over real HTTP: the sandbox delivers signed events to a live host app.

Two werkzeug servers on loopback: the host app (with its webhook endpoint) and
the HAVN sandbox, whose dispatcher POSTs events to the host. The host's
receivers must fire once per event, and its payments must follow the events.
"""
from __future__ import annotations

import threading
from typing import Any, Iterator, List, Tuple

import pytest
import requests

from flask_havn import HAVNClient, signals
from flask_havn.sandbox import SandboxServer
from flask_havn.webhook_testing import record_signals

from _webhook_helpers import CONFIG, SECRET, add_payment, config, event_rows, payment_row


@pytest.fixture
def live(make_host: Any) -> Iterator[Tuple[Any, SandboxServer, SandboxServer, requests.Session]]:
    host = make_host(config(SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 30}}))
    with SandboxServer(host.app) as host_server:
        sandbox = SandboxServer(config={
            "HAVN_API_KEY": CONFIG["HAVN_API_KEY"],
            "HAVN_WEBHOOK_SECRET": SECRET,
            "HAVN_SANDBOX_WEBHOOK_URL": host_server.url + "/havn/webhooks",
            "HAVN_SANDBOX_DELIVERY_SCHEDULE_FACTOR": 0.001,
            "HAVN_SANDBOX_SEED": 7,
        })
        with sandbox, requests.Session() as http:
            yield host, host_server, sandbox, http


def _deliveries(sandbox: SandboxServer, http: requests.Session) -> List[dict]:
    flushed = http.post(sandbox.url + "/_sandbox/events/flush", json={"timeout": 20}, timeout=30).json()
    assert flushed["idle"] is True and flushed["pending"] == []
    return http.get(sandbox.url + "/_sandbox/deliveries", timeout=10).json()["deliveries"]


def _emit(sandbox: SandboxServer, http: requests.Session, event_type: str, gateway_id: str) -> dict:
    response = http.post(sandbox.url + "/_sandbox/events", timeout=10, json={
        "type": event_type, "data": {"transaction": {"payment_gateway_transaction_id": gateway_id}}})
    assert response.status_code == 202, response.text
    return response.json()


def test_sandbox_events_reach_the_host_and_receivers_fire_once(live: Any) -> None:
    host, _, sandbox, http = live
    paid = add_payment(host, payment_gateway_transaction_id="pi_e2e_paid", invoice_id="INV-E2E-1")
    idr = add_payment(host, payment_gateway_transaction_id="pi_e2e_idr", invoice_id="INV-E2E-2",
                      currency="IDR", amount=150000)
    with record_signals() as sent:
        first = _emit(sandbox, http, "commission.distributed", "pi_e2e_paid")
        second = _emit(sandbox, http, "transaction.conversion_failed", "pi_e2e_idr")
        deliveries = _deliveries(sandbox, http)
    assert {(d["event_id"], d["status_code"], d["delivered"]) for d in deliveries} == {
        (first["id"], 200, True), (second["id"], 200, True)}
    by_event = {}
    for signal in sent:
        by_event.setdefault(signal.kwargs["event"].id, []).append(signal.name)
    assert by_event == {
        first["id"]: ["havn.commission-distributed", "havn.webhook-received"],
        second["id"]: ["havn.conversion-failed", "havn.webhook-received"],
    }
    assert all(signal.sender is host.app for signal in sent)
    rows = event_rows(host)
    assert (rows[first["id"]]["status"], rows[first["id"]]["payment_id"]) == ("processed", paid)
    assert (rows[second["id"]]["status"], rows[second["id"]]["payment_id"]) == ("processed", idr)
    paid_row = payment_row(host, paid)
    assert paid_row["delivery_state"] == "sent"
    assert paid_row["commissions"] == first["data"]["commissions"]
    assert paid_row["havn_transaction_id"] == first["data"]["transaction"]["transaction_id"]
    idr_row = payment_row(host, idr)
    assert idr_row["delivery_state"] == "conversion_failed"
    assert idr_row["last_error"] == second["data"]["reason"]


def test_a_failing_receiver_is_retried_by_the_sandbox_and_processed_once(live: Any) -> None:
    host, _, sandbox, http = live
    paid = add_payment(host, payment_gateway_transaction_id="pi_e2e_retry")
    lock = threading.Lock()
    calls: List[str] = []

    def flaky(sender: Any, event: Any, **kwargs: Any) -> None:
        with lock:
            calls.append(event.id)
            if len(calls) <= 2:
                raise RuntimeError("bookkeeping offline")

    signals.commission_distributed.connect(flaky, weak=False)
    try:
        with record_signals(signals.webhook_received) as received:
            envelope = _emit(sandbox, http, "commission.distributed", "pi_e2e_retry")
            deliveries = _deliveries(sandbox, http)
    finally:
        signals.commission_distributed.disconnect(flaky)
    assert [(d["attempt"], d["status_code"]) for d in deliveries] == [(1, 500), (2, 500), (3, 200)]
    assert calls == [envelope["id"]] * 3
    assert [s.kwargs["event"].id for s in received] == [envelope["id"]]
    stored = event_rows(host)[envelope["id"]]
    assert (stored["status"], stored["attempts"], stored["last_error"]) == ("processed", 3, None)
    assert payment_row(host, paid)["delivery_state"] == "sent"


def test_a_transaction_sent_by_the_client_comes_back_as_an_event(live: Any) -> None:
    """The whole loop: HAVNClient → sandbox over HTTP → commission.distributed → host endpoint."""
    host, _, sandbox, http = live
    seeded = http.post(sandbox.url + "/_sandbox/seed", timeout=10, json={"associates": [
        {"name": "Upline", "referral_code": "HAVN-UP-001"},
        {"name": "Referrer", "referral_code": "HAVN-MJ-001", "upline_code": "HAVN-UP-001"},
    ]})
    assert seeded.status_code in (200, 201), seeded.text
    paid = add_payment(host, payment_gateway_transaction_id="pi_e2e_loop", amount=100000)
    with HAVNClient(api_key=CONFIG["HAVN_API_KEY"], webhook_secret=SECRET, base_url=sandbox.url,
                    max_retries=0) as client, record_signals() as sent:
        result = client.transactions.send(
            100000, referral_code="HAVN-MJ-001", payment_gateway_transaction_id="pi_e2e_loop",
            payment_gateway="STRIPE", customer_email="buyer@example.com", invoice_id="INV-1")
        deliveries = _deliveries(sandbox, http)
    assert [d["status_code"] for d in deliveries] == [200]
    assert [s.name for s in sent] == ["havn.commission-distributed", "havn.webhook-received"]
    row = payment_row(host, paid)
    assert row["delivery_state"] == "sent"
    assert row["total_commission"] == sum(c["amount"] for c in row["commissions"])
    assert [c["level"] for c in row["commissions"]] == [1, 2]
    assert row["havn_transaction_id"] == sent[0].kwargs["event"].data["transaction"]["transaction_id"]
    assert result is not None

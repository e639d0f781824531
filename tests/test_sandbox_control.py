"""The sandbox's control routes under /_sandbox/ (sandbox/control.py), over real HTTP."""
from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List

import pytest
import requests
from flask import Flask, request
from standardwebhooks.webhooks import Webhook

from flask_havn.config import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET
from flask_havn.sandbox.server import SandboxServer
from flask_havn.signing import sign_payload

SEED = {
    "associates": [
        {"name": "Top Seller", "referral_code": "HAVN-TS-001"},
        {"name": "Maya Jones", "email": "maya@example.com", "referral_code": "HAVN-MJ-001",
         "upline_code": "HAVN-TS-001"},
    ],
    "vouchers": [{"associate_code": "HAVN-MJ-001", "type": "DISCOUNT_PERCENTAGE", "value": 1000,
                  "min_purchase": 0, "usage_limit": 5}],
}


class Control:
    def __init__(self, base: str, session: requests.Session) -> None:
        self.base = base
        self.http = session

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.base + "/_sandbox" + path, **kwargs)

    def transaction(self, pg_id: str) -> requests.Response:
        payload = {"amount": 10000, "payment_gateway_transaction_id": pg_id, "payment_gateway": "STRIPE",
                   "customer_email": "c@example.com", "referral_code": "HAVN-MJ-001"}
        return self.http.post(self.base + "/api/v1/webhook/transaction", data=json.dumps(payload),
                              headers={"X-API-Key": SANDBOX_API_KEY, "Content-Type": "application/json",
                                       "X-Signature": sign_payload(SANDBOX_WEBHOOK_SECRET, payload)})


@pytest.fixture
def control(havn_sandbox: SandboxServer) -> Iterator[Control]:
    with requests.Session() as session:
        yield Control(havn_sandbox.url, session)


@pytest.fixture
def receiver() -> Iterator[Any]:
    app = Flask("receiver")
    app.config["hits"] = []

    @app.post("/hooks")
    def hooks() -> Any:
        app.config["hits"].append(({k.lower(): v for k, v in request.headers.items()}, request.get_data()))
        return "", 200

    with SandboxServer(app) as server:
        server.hits = app.config["hits"]  # type: ignore[attr-defined]
        yield server


def test_seed_and_state(control: Control) -> None:
    created = control("POST", "/seed", json=SEED)
    assert created.status_code == 200
    body = created.json()
    assert [a["referral_code"] for a in body["associates"]] == ["HAVN-TS-001", "HAVN-MJ-001"]
    assert len(body["vouchers"]) == 1 and body["vouchers"][0]["code"].startswith("HAVN-")
    state = control("GET", "/state").json()
    assert state["counts"]["associates"] == 2 and state["counts"]["vouchers"] == 1
    assert state["associate_tree"][0]["referral_code"] == "HAVN-TS-001"
    assert {"events", "event_status", "deliveries", "faults", "webhook_url"} <= set(state)
    assert state["faults"] == {"spec": None, "stats": control("GET", "/state").json()["faults"]["stats"]}


@pytest.mark.parametrize("body, status", [
    (b"[1]", 400),
    (b"not json", 400),
    (json.dumps({"associates": "x"}).encode(), 400),
    (json.dumps({"colours": []}).encode(), 400),
    (json.dumps({"associates": [{"name": "A", "upline_code": "HAVN-NO-404"}]}).encode(), 404),
])
def test_bad_seed_is_refused_and_changes_nothing(control: Control, body: bytes, status: int) -> None:
    response = control("POST", "/seed", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["message"]
    assert control("GET", "/state").json()["counts"]["associates"] == 0


@pytest.mark.parametrize("content_type", [
    "text/plain",                          # what a cross-site fetch/form can send without a CORS preflight
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    None,                                  # no Content-Type at all
])
def test_bodies_that_are_not_declared_json_are_415_and_change_nothing(
        control: Control, receiver: Any, content_type: Any) -> None:
    control("PUT", "/webhook-url", json={"url": receiver.url + "/hooks"})
    headers = {} if content_type is None else {"Content-Type": content_type}
    forged = json.dumps({"type": "commission.distributed", "data": {"total_commission": 999999}}).encode()
    requests_to_try = [
        ("POST", "/events", forged),
        ("POST", "/seed", json.dumps(SEED).encode()),
        ("PUT", "/rates", b'{"IDR": "0.5"}'),
        ("PUT", "/faults", b'{"rates": {"500": 1}}'),
        ("PUT", "/webhook-url", b'{"url": "http://evil.example/hooks"}'),
    ]
    for method, path, body in requests_to_try:
        response = control(method, path, data=body, headers=headers)
        assert response.status_code == 415, (method, path, response.text)
        assert response.json()["error"] == "UnsupportedMediaType"
        assert "Content-Type: application/json" in response.json()["message"]
    log = control("GET", "/deliveries", params={"wait": 5}).json()
    assert log["deliveries"] == [] and receiver.hits == []  # nothing was signed with the real secret
    state = control("GET", "/state").json()
    assert state["events"] == [] and state["counts"]["associates"] == 0
    assert state["rates"]["IDR"] == "0.0000633" and state["faults"]["spec"] is None
    assert state["webhook_url"] == receiver.url + "/hooks"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
@pytest.mark.parametrize("method, path", [("POST", "/reset"), ("DELETE", "/faults")])
def test_body_less_state_changes_also_take_json_only(
        control: Control, content_type: Any, method: str, path: str) -> None:
    # A cross-site <form method=post action=…/_sandbox/reset> must not wipe the sandbox.
    control("POST", "/seed", json=SEED)
    control("PUT", "/faults", json={"burst_429": 2})
    headers = {} if content_type is None else {"Content-Type": content_type}
    for body in (b"", b"{}", b"x=1"):
        response = control(method, path, data=body, headers=headers)
        assert response.status_code == 415, (body, response.text)
        assert response.json()["error"] == "UnsupportedMediaType"
        assert "{}" in response.json()["message"]
    empty_json = control(method, path, data=b"", headers={"Content-Type": "application/json"})
    assert empty_json.status_code == 400 and "JSON object body" in empty_json.json()["message"]
    state = control("GET", "/state").json()
    assert state["counts"]["associates"] == 2 and state["faults"]["spec"]["burst_429"] == 2
    assert control(method, path, json={}).status_code == 200
    after = control("GET", "/state").json()
    assert after["faults"]["spec"] is None
    assert after["counts"]["associates"] == (0 if path == "/reset" else 2)


def test_a_json_suffix_content_type_is_accepted(control: Control) -> None:
    response = control("POST", "/seed", data=json.dumps(SEED), headers={"Content-Type": "application/vnd.x+json"})
    assert response.status_code == 200


def test_reset_drops_everything(control: Control, havn_sandbox: SandboxServer) -> None:
    control("POST", "/seed", json=SEED)
    assert control.transaction("pg_reset").status_code == 201
    control("PUT", "/faults", json={"burst_429": 3})
    control("PUT", "/webhook-url", json={"url": "http://127.0.0.1:9/hooks"})
    assert control("POST", "/reset", json={}).json()["success"] is True
    state = control("GET", "/state").json()
    assert state["counts"] == {key: 0 for key in state["counts"]}
    assert state["events"] == [] and state["deliveries"] == []
    assert state["faults"]["spec"] is None and state["webhook_url"] is None
    assert havn_sandbox.state.dispatcher.url is None


def test_emit_event_on_demand_is_delivered_and_verifiable(control: Control, receiver: Any) -> None:
    control("POST", "/seed", json=SEED)
    txn_id = control.transaction("pg_evt").json()["transaction"]["transaction_id"]
    assert control("PUT", "/webhook-url", json={"url": receiver.url + "/hooks"}).json() == {
        "url": receiver.url + "/hooks"}
    emitted = control("POST", "/events", json={"type": "commission.distributed", "transaction_id": txn_id,
                                                "data": {"total_commission": 1}})
    assert emitted.status_code == 202
    envelope = emitted.json()
    assert envelope["type"] == "commission.distributed" and envelope["id"].startswith("evt_")
    assert envelope["data"]["transaction"]["transaction_id"] == txn_id
    assert envelope["data"]["total_commission"] == 1  # the override was merged
    log = control("GET", "/deliveries", params={"wait": 10}).json()
    assert log["idle"] is True
    # the transaction's own event went out before a URL was set: logged, not delivered
    assert [(d["type"], d["delivered"]) for d in log["deliveries"]] == [("commission.distributed", False),
                                                                         ("commission.distributed", True)]
    assert log["deliveries"][1]["event_id"] == envelope["id"]
    [(headers, body)] = receiver.hits
    assert Webhook(SANDBOX_WEBHOOK_SECRET.encode()).verify(body, headers)["id"] == envelope["id"]


def test_emit_event_without_url_is_logged_not_delivered(control: Control) -> None:
    envelope = control("POST", "/events", json={"type": "transaction.conversion_failed"}).json()
    assert envelope["data"]["transaction"]["status"] == "FAILED"
    [entry] = control("GET", "/deliveries").json()["deliveries"]
    assert entry["event_id"] == envelope["id"]
    assert entry["delivered"] is False and entry["error"] == "no webhook URL configured"


@pytest.mark.parametrize("body, field", [
    ({"type": "payment.refunded"}, "type"),
    ({}, "type"),
    ({"type": "commission.distributed", "data": [1]}, "data"),
    ({"type": "commission.distributed", "transaction_id": 5}, "transaction_id"),
])
def test_bad_event_requests_are_400(control: Control, body: Dict[str, Any], field: str) -> None:
    response = control("POST", "/events", json=body)
    assert response.status_code == 400 and response.json()["field"] == field
    assert control("GET", "/state").json()["events"] == []


def test_event_for_unknown_transaction_is_404(control: Control) -> None:
    response = control("POST", "/events", json={"type": "commission.distributed", "transaction_id": "txn_nope"})
    assert response.status_code == 404


def test_faults_put_and_delete(control: Control) -> None:
    put = control("PUT", "/faults", json={"seed": 1, "rates": {"503": 0.5}, "latency": 0})
    assert put.status_code == 200
    assert put.json()["spec"] == {"seed": 1, "rates": {"503": 0.5}, "latency": 0.0, "hang_seconds": 30.0,
                                  "burst_429": 0}
    bad = control("PUT", "/faults", json={"rates": {"503": 5}})
    assert bad.status_code == 400 and "between 0 and 1" in bad.json()["message"]
    assert control("GET", "/state").json()["faults"]["spec"]["rates"] == {"503": 0.5}  # unchanged
    assert control("PUT", "/faults", data=b"[]", headers={"Content-Type": "application/json"}).status_code == 400
    deleted = control("DELETE", "/faults", json={})
    assert deleted.status_code == 200 and deleted.json()["spec"] is None


def test_rates_put(control: Control) -> None:
    response = control("PUT", "/rates", json={"IDR": "0.00007"})
    assert response.status_code == 200 and response.json()["rates"]["IDR"] == "0.00007"
    assert control("GET", "/state").json()["rates"]["IDR"] == "0.00007"
    for bad in ({"XXX": "1"}, {"IDR": "-1"}, {"USD": "2"}):
        refused = control("PUT", "/rates", json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"] == "ValidationError"
    assert control("GET", "/state").json()["rates"]["IDR"] == "0.00007"


@pytest.mark.parametrize("rate", ["1e-999999999", "0.0000633" + "1" * 91, "1e-70", "0." + "0" * 12 + "9"])
def test_rates_that_cannot_print_in_64_characters_are_400(control: Control, rate: str) -> None:
    refused = control("PUT", "/rates", json={"IDR": rate})
    assert refused.status_code == 400
    assert refused.json()["field"] == "rates.IDR"
    assert "from 1e-12 to 1e9 with at most 20 significant digits" in refused.json()["message"]
    assert control("GET", "/state").json()["rates"]["IDR"] == "0.0000633"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "/relative", 42, ["http://x"]])
def test_bad_webhook_url_is_400(control: Control, url: Any) -> None:
    response = control("PUT", "/webhook-url", json={"url": url})
    assert response.status_code == 400 and response.json()["field"] == "url"
    assert control("GET", "/state").json()["webhook_url"] is None


def test_webhook_url_can_be_turned_off(control: Control) -> None:
    control("PUT", "/webhook-url", json={"url": "https://example.com/hooks"})
    assert control("GET", "/state").json()["webhook_url"] == "https://example.com/hooks"
    assert control("PUT", "/webhook-url", json={"url": None}).json() == {"url": None}
    assert control("GET", "/state").json()["webhook_url"] is None


def test_events_flush_delivers_queued_events_now(control: Control, receiver: Any) -> None:
    control("POST", "/seed", json=SEED)
    control("PUT", "/webhook-url", json={"url": receiver.url + "/hooks"})
    assert control.transaction("pg_flush").status_code == 201
    emitted = control("POST", "/events", json={"type": "transaction.conversion_failed"}).json()
    flushed = control("POST", "/events/flush", json={"timeout": 10})
    assert flushed.status_code == 200
    body = flushed.json()
    assert body["idle"] is True and body["pending"] == []
    assert body["event_status"][emitted["id"]] == "delivered" and set(body["event_status"].values()) == {"delivered"}
    assert len(receiver.hits) == 2
    assert control("POST", "/events/flush", json={}).json()["idle"] is True  # default timeout, nothing queued


@pytest.mark.parametrize("timeout", ["5", -1, 31, True, None])
def test_events_flush_timeout_must_be_seconds(control: Control, timeout: Any) -> None:
    response = control("POST", "/events/flush", json={"timeout": timeout})
    assert response.status_code == 400 and response.json()["field"] == "timeout"
    assert control("POST", "/events/flush", data=b"", headers={"Content-Type": "text/plain"}).status_code == 415


@pytest.mark.parametrize("wait", ["soon", "-1", "1000"])
def test_bad_wait_is_400(control: Control, wait: str) -> None:
    response = control("GET", "/deliveries", params={"wait": wait})
    assert response.status_code == 400 and response.json()["field"] == "wait"


def test_control_routes_are_never_faulted(control: Control) -> None:
    control("PUT", "/faults", json={"rates": {"500": 1.0}})
    codes: List[int] = [control("GET", "/state").status_code, control("GET", "/deliveries").status_code,
                        control("POST", "/seed", json={}).status_code]
    assert codes == [200, 200, 200]
    assert control.transaction("pg_x").status_code == 500


@pytest.mark.parametrize("depth", [70, 100_000])
def test_a_body_nested_too_deep_is_400_on_control_and_api_routes(control: Control, depth: int) -> None:
    """Deep nesting (past rules.MAX_JSON_DEPTH, or past Python's own recursion limit) is a clear 400, never a 500."""
    body = "[" * depth + "]" * depth
    wrapped = '{"a": ' + body + "}"
    before = control("GET", "/state").json()["counts"]
    for text in (body, wrapped):
        seeded = control("POST", "/seed", data=text, headers={"Content-Type": "application/json"})
        assert seeded.status_code == 400, seeded.text
        assert "levels deep" in seeded.json()["message"] or "JSON object" in seeded.json()["message"]
        sent = control.http.post(control.base + "/api/v1/webhook/transaction", data=text,
                                 headers={"X-API-Key": SANDBOX_API_KEY, "Content-Type": "application/json",
                                          "X-Signature": "0" * 64})
        assert sent.status_code in (400, 401), sent.text  # refused either way, never a 500
    assert control("GET", "/state").json()["counts"] == before

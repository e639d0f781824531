"""The sandbox's HAVN API over HTTP (sandbox/views.py + app.py): auth, signing, limits, modes, faults.

Most tests talk to the pytest plugin's ``havn_sandbox`` (a real server on loopback, reset per
test); a few build their own app and talk to it in-process through ``WSGIAdapter``.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import requests

from flask_havn import HAVNClient
from flask_havn.config import SANDBOX_API_KEY, SANDBOX_BASE_URL, SANDBOX_WEBHOOK_SECRET
from flask_havn.errors import HAVNConfigError
from flask_havn.sandbox.adapter import WSGIAdapter
from flask_havn.sandbox.app import SandboxState, create_app, get_state
from flask_havn.sandbox.ratelimit import RateLimiter
from flask_havn.sandbox.server import SandboxServer
from flask_havn.signing import canonical_json, sign_body, sign_payload

API = "/api/v1/webhook"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
HIERARCHY = {
    "associates": [
        {"name": "Level Five", "referral_code": "HAVN-LF-005"},
        {"name": "Level Four", "referral_code": "HAVN-LF-004", "upline_code": "HAVN-LF-005"},
        {"name": "Level Three", "referral_code": "HAVN-LT-003", "upline_code": "HAVN-LF-004"},
        {"name": "Level Two", "referral_code": "HAVN-LT-002", "upline_code": "HAVN-LT-003"},
        {"name": "Maya Jones", "email": "maya@example.com", "referral_code": "HAVN-MJ-001",
         "upline_code": "HAVN-LT-002"},
    ],
}


def txn(pg_id: str = "pg_1", **extra: Any) -> Dict[str, Any]:
    """A transaction payload in the order the official SDK builds it."""
    payload = {"amount": 10000, "payment_gateway_transaction_id": pg_id, "payment_gateway": "STRIPE",
               "customer_email": "customer@example.com", "referral_code": "HAVN-MJ-001", "currency": "USD"}
    payload.update(extra)
    return payload


def headers_for(payload: Optional[Dict[str, Any]], *, key: str = SANDBOX_API_KEY,
                secret: str = SANDBOX_WEBHOOK_SECRET, **extra: str) -> Dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json",
               "X-API-Key": key, "X-Signature": sign_payload(secret, payload)}
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return headers


class Sandbox:
    """A thin HTTP client for one sandbox (server URL or in-process session)."""

    def __init__(self, base: str, session: requests.Session) -> None:
        self.base = base
        self.http = session

    def post(self, path: str, payload: Dict[str, Any], *, sdk_style: bool = True,
             headers: Optional[Dict[str, str]] = None, **kwargs: Any) -> requests.Response:
        body = json.dumps(payload).encode() if sdk_style else canonical_json(payload)
        return self.http.post(self.base + API + path, data=body,
                              headers=headers if headers is not None else headers_for(payload), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", headers_for(None))
        return self.http.get(self.base + API + path, **kwargs)

    def control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.base + "/_sandbox" + path, **kwargs)

    def state(self) -> Dict[str, Any]:
        return self.control("GET", "/state").json()


@pytest.fixture
def sandbox(havn_sandbox: SandboxServer) -> Iterator[Sandbox]:
    with requests.Session() as session:
        client = Sandbox(havn_sandbox.url, session)
        assert client.control("POST", "/seed", json=HIERARCHY).status_code == 200
        yield client


@pytest.fixture
def make_inprocess() -> Iterator[Callable[..., Any]]:
    """Own sandbox apps served in-process through WSGIAdapter; closed afterwards."""
    made: List[Any] = []

    def make(config: Optional[Dict[str, Any]] = None, seed: bool = True) -> Any:
        app = create_app(config)
        session = requests.Session()
        session.mount(SANDBOX_BASE_URL, WSGIAdapter(app))
        made.append((app, session))
        client = Sandbox(SANDBOX_BASE_URL, session)
        if seed:
            assert client.control("POST", "/seed", json=HIERARCHY).status_code == 200
        return app, client

    yield make
    for app, session in made:
        session.close()
        get_state(app).close()


# -- authentication and signatures -------------------------------------------


@pytest.mark.parametrize("headers", [
    {"X-Signature": sign_payload(SANDBOX_WEBHOOK_SECRET, txn())},                   # no key
    headers_for(txn(), key="wrong-key"),
    headers_for(txn(), key=SANDBOX_API_KEY + " "),                                   # stray whitespace
    headers_for(txn(), key="clé-non-ascii"),
])
def test_wrong_or_missing_api_key_is_401(sandbox: Sandbox, headers: Dict[str, str]) -> None:
    response = sandbox.post("/transaction", txn(), headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "AuthenticationError", "message": "Invalid API key"}
    assert sandbox.state()["counts"]["transactions"] == 0


@pytest.mark.parametrize("signature", [
    None,
    "",
    "0" * 64,
    sign_payload("another-secret", txn()),
    sign_payload(SANDBOX_WEBHOOK_SECRET, txn(amount=10001)),   # signed a different payload
    "é" * 64,                                                  # non-ASCII: must not crash the compare
])
def test_wrong_or_missing_signature_is_401(sandbox: Sandbox, signature: Optional[str]) -> None:
    headers = headers_for(txn())
    if signature is None:
        del headers["X-Signature"]
    else:
        headers["X-Signature"] = signature
    response = sandbox.post("/transaction", txn(), headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "AuthenticationError", "message": "Invalid signature"}
    assert sandbox.state()["counts"]["transactions"] == 0


def test_sdk_body_and_canonical_body_are_both_accepted(sandbox: Sandbox) -> None:
    sdk = txn("pg_sdk", custom_fields={"order_id": "42", "é": "ü"})
    raw = json.dumps(sdk).encode()
    assert raw != canonical_json(sdk) and b", " in raw  # really the spaced, unsorted form
    assert sandbox.post("/transaction", sdk, sdk_style=True).status_code == 201
    assert sandbox.post("/transaction", txn("pg_canonical"), sdk_style=False).status_code == 201
    assert sandbox.state()["counts"]["transactions"] == 2


def test_signature_header_is_compared_case_insensitively(sandbox: Sandbox) -> None:
    headers = headers_for(txn())
    headers["X-Signature"] = headers["X-Signature"].upper()
    assert sandbox.post("/transaction", txn(), headers=headers).status_code == 201


def test_get_vouchers_is_signed_over_empty_object_and_query_is_unsigned(sandbox: Sandbox) -> None:
    assert sandbox.get("/vouchers").status_code == 200
    response = sandbox.get("/vouchers", params={"page": 1, "per_page": 5, "active": "True"})
    assert response.status_code == 200
    assert set(response.json()["pagination"]) == {"page", "limit", "total", "total_pages", "has_prev", "has_next"}
    bad = headers_for(None)
    bad["X-Signature"] = sign_payload(SANDBOX_WEBHOOK_SECRET, {"page": 1})
    assert sandbox.get("/vouchers", headers=bad).status_code == 401


def test_contract_test_vectors(make_inprocess: Callable[..., Any]) -> None:
    vector = {"amount": 10000, "currency": "USD", "customer_email": "customer@example.com",
              "payment_gateway": "STRIPE", "payment_gateway_transaction_id": "stripe_txn_001",
              "referral_code": "HAVN-MJ-001"}
    post_sig = "06abae1c59b0c6857d9b7ec769ad9d423cbae40c540e31d0a89812e18ee322c6"
    get_sig = "748a263298986af60d952005bd6587eb7fe36a5a9f1ddaf94ca4cb46729473cb"
    assert sign_payload("test_secret", vector) == post_sig
    assert sign_payload("test_secret", None) == get_sig
    _, client = make_inprocess({"HAVN_WEBHOOK_SECRET": "test_secret"})
    headers = {"X-API-Key": SANDBOX_API_KEY, "X-Signature": post_sig, "Content-Type": "application/json"}
    assert client.post("/transaction", vector, headers=headers).status_code == 201
    assert client.get("/vouchers", headers={"X-API-Key": SANDBOX_API_KEY, "X-Signature": get_sig}).status_code == 200


# -- bodies -------------------------------------------------------------------


@pytest.mark.parametrize("body", [[1, 2], "text", 42, None])
def test_a_signed_body_that_is_not_an_object_is_400(sandbox: Sandbox, body: Any) -> None:
    raw = json.dumps(body).encode()
    headers = headers_for(None)
    headers["X-Signature"] = sign_body(SANDBOX_WEBHOOK_SECRET, canonical_json(body))  # a valid signature
    response = sandbox.http.post(sandbox.base + API + "/transaction", data=raw, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "ValidationError"
    assert "JSON object" in response.json()["message"]


def test_hostile_bodies_never_crash_the_sandbox(sandbox: Sandbox, havn_sandbox: SandboxServer) -> None:
    url = sandbox.base + API + "/transaction"
    for raw in (b"{not json", b"\xff\xfe\x00garbage", b"[" * 100000 + b"]" * 100000, b"{}" * 3):
        response = sandbox.http.post(url, data=raw, headers=headers_for(None))
        assert response.status_code in (400, 401)
        assert "error" in response.json()
    empty = sandbox.http.post(url, data=b"", headers=headers_for(None))  # signs as {}: a validation error
    assert empty.status_code == 400 and empty.json()["error"] == "ValidationError"
    assert havn_sandbox.errors == []


def test_oversized_body_is_413_json(sandbox: Sandbox) -> None:
    payload = txn(description="x" * (1024 * 1024 + 10))
    response = sandbox.post("/transaction", payload)
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"


def test_unknown_route_and_wrong_method_are_json(sandbox: Sandbox) -> None:
    missing = sandbox.http.get(sandbox.base + API + "/refund")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    assert missing.headers["Content-Type"] == "application/json"
    wrong = sandbox.http.get(sandbox.base + API + "/transaction")
    assert wrong.status_code == 405 and wrong.json()["error"] == "MethodNotAllowed"
    assert "POST" in wrong.headers["Allow"]


# -- headers on every answer ----------------------------------------------------


def test_rate_limit_and_request_id_headers_on_every_api_answer(sandbox: Sandbox) -> None:
    answers = [
        sandbox.post("/transaction", txn("pg_ok")),                                   # 201
        sandbox.post("/transaction", txn("pg_bad", amount=-5)),                       # 400
        sandbox.post("/transaction", txn("pg_404", referral_code="HAVN-NO-999")),     # 404
        sandbox.post("/transaction", txn("pg_401"), headers=headers_for(txn(), key="nope")),  # 401
        sandbox.get("/vouchers"),                                                     # 200
    ]
    assert [a.status_code for a in answers] == [201, 400, 404, 401, 200]
    now = time.time()
    request_ids = set()
    for answer in answers:
        for name in RATE_HEADERS:
            assert answer.headers[name].isdigit(), name
        reset = int(answer.headers["X-RateLimit-Reset"])
        assert now - 1 <= reset <= now + 61  # absolute epoch seconds, within the current minute
        request_ids.add(answer.headers["X-Request-Id"])
    assert len(request_ids) == len(answers)
    remaining = [int(a.headers["X-RateLimit-Remaining"]) for a in answers[:4]]
    assert remaining == sorted(remaining, reverse=True) and len(set(remaining)) == 4
    assert sandbox.control("GET", "/state").headers["X-Request-Id"].startswith("req_")


def test_login_allows_20_a_minute_then_429(make_inprocess: Callable[..., Any]) -> None:
    app, client = make_inprocess()
    state: SandboxState = get_state(app)
    clock_now = [1_800_000_005.0]
    state.limiter = RateLimiter(state.settings.rate_limits, clock=lambda: clock_now[0])
    answers = [client.post("/login", {"email": "maya@example.com"}) for _ in range(21)]
    assert [a.status_code for a in answers[:20]] == [200] * 20
    over = answers[20]
    assert over.status_code == 429
    assert over.json()["error"] == "RateLimitExceeded"
    assert "20 requests per minute" in over.json()["message"]
    assert over.headers["X-RateLimit-Limit"] == "20"
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert over.headers["X-RateLimit-Reset"] == "1800000060"
    assert answers[0].headers["X-RateLimit-Remaining"] == "19"
    # the limit comes before authentication: a bad key is still just "too many"
    assert client.post("/login", {"email": "x@example.com"}, headers={"X-API-Key": "bad"}).status_code == 429
    assert client.post("/transaction", txn()).status_code == 201  # other endpoints have their own window
    clock_now[0] = 1_800_000_060.0
    assert client.post("/login", {"email": "maya@example.com"}).status_code == 200


# -- test mode and idempotency ----------------------------------------------------


@pytest.mark.parametrize("value", ["true", "TRUE", "True"])
def test_test_mode_computes_but_stores_nothing(sandbox: Sandbox, havn_sandbox: SandboxServer, value: str) -> None:
    payload = txn("pg_test")
    response = sandbox.post("/transaction", payload, headers=headers_for(payload, X_Test_Mode=value))
    assert response.status_code == 201
    assert [c["amount"] for c in response.json()["commissions"]] == [500, 300, 200, 100, 100]
    state = sandbox.state()
    assert state["counts"]["transactions"] == 0 and state["counts"]["commissions"] == 0
    [event] = havn_sandbox.state.dispatcher.events()
    assert event["type"] == "commission.distributed" and event["test_mode"] is True


def test_other_test_mode_values_are_live(sandbox: Sandbox) -> None:
    payload = txn("pg_live")
    assert sandbox.post("/transaction", payload, headers=headers_for(payload, X_Test_Mode="yes")).status_code == 201
    assert sandbox.state()["counts"]["transactions"] == 1


def test_idempotency_key_replays_and_conflicts(sandbox: Sandbox) -> None:
    payload = txn("pg_idem")
    first = sandbox.post("/transaction", payload, headers=headers_for(payload, Idempotency_Key="order-42"))
    again = sandbox.post("/transaction", payload, headers=headers_for(payload, Idempotency_Key="order-42"))
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    state = sandbox.state()
    assert state["counts"]["transactions"] == 1
    assert state["transactions"][0]["idempotency_key"] == "order-42"
    other = txn("pg_other")
    clash = sandbox.post("/transaction", other, headers=headers_for(other, Idempotency_Key="order-42"))
    assert clash.status_code == 409 and clash.json()["error"] == "Conflict"
    assert sandbox.state()["counts"]["transactions"] == 1
    assert len([e for e in sandbox.state()["events"] if e["type"] == "commission.distributed"]) == 1


def test_an_absurd_idempotency_key_is_400(sandbox: Sandbox) -> None:
    payload = txn("pg_long")
    response = sandbox.post("/transaction", payload, headers=headers_for(payload, Idempotency_Key="k" * 256))
    assert response.status_code == 400 and response.json()["field"] == "Idempotency-Key"
    assert sandbox.state()["counts"]["transactions"] == 0


# -- the other endpoints ----------------------------------------------------------


def test_user_sync_voucher_validate_and_login_redemption(sandbox: Sandbox) -> None:
    synced = sandbox.post("/user-sync", {"email": "new@example.com", "name": "New Person",
                                         "upline_code": "HAVN-MJ-001", "create_associate": True,
                                         "is_owner": False})
    assert synced.status_code == 200 and synced.json()["user_created"] is True
    assert sandbox.post("/voucher/validate", {"voucher_code": "HAVN-NOPE-X"}).status_code == 404

    login = sandbox.post("/login", {"email": "new@example.com"})
    assert login.status_code == 200
    redirect = login.json()["data"]["redirect_url"]
    assert redirect.startswith(sandbox.base + "/login?token=")
    page = sandbox.http.get(redirect)
    assert page.status_code == 200 and page.json()["success"] is True
    assert page.json()["user"]["email"] == "new@example.com"
    reused = sandbox.http.get(redirect)
    assert reused.status_code == 400 and reused.json()["field"] == "token"
    assert sandbox.http.get(sandbox.base + "/login").status_code == 400
    assert sandbox.http.get(sandbox.base + "/login?token=forged.token.value").status_code == 400


def test_a_valid_voucher_is_answered_by_status_alone(sandbox: Sandbox, havn_sandbox: SandboxServer) -> None:
    seeded = sandbox.control("POST", "/seed", json={"vouchers": [
        {"associate_code": "HAVN-MJ-001", "type": "DISCOUNT_PERCENTAGE", "value": 1000, "min_purchase": 5000}]})
    code = seeded.json()["vouchers"][0]["code"]
    valid = sandbox.post("/voucher/validate", {"voucher_code": code, "amount": 5000})
    assert valid.status_code == 200 and valid.content == b""
    assert "Content-Type" not in valid.headers and valid.headers["Content-Length"] == "0"
    assert all(name in valid.headers for name in RATE_HEADERS) and valid.headers["X-Request-Id"]
    too_small = sandbox.post("/voucher/validate", {"voucher_code": code, "amount": 4999})
    assert too_small.status_code == 422 and too_small.json()["field"] == "amount"
    with HAVNClient(api_key=SANDBOX_API_KEY, webhook_secret=SANDBOX_WEBHOOK_SECRET, base_url=havn_sandbox.url,
                    max_retries=0) as client:
        answer = client.vouchers.validate(code, amount=5000)
        assert answer and (answer.valid, answer.status_code, answer.reason) == (True, 200, "Voucher is valid")
        refused = client.vouchers.validate(code, amount=4999)
        assert not refused and refused.status_code == 422 and "min_purchase" in refused.reason


# -- events leave after the answer ------------------------------------------------


def test_a_transaction_event_reaches_the_configured_webhook(sandbox: Sandbox, havn_sandbox: SandboxServer) -> None:
    from flask import Flask, request as flask_request
    from standardwebhooks.webhooks import Webhook

    received: List[Dict[str, Any]] = []
    receiver_app = Flask("receiver")

    @receiver_app.post("/hooks")
    def hooks() -> Any:
        received.append({"headers": {k.lower(): v for k, v in flask_request.headers.items()},
                         "body": flask_request.get_data()})
        return "", 204

    with SandboxServer(receiver_app) as receiver:
        assert sandbox.control("PUT", "/webhook-url", json={"url": receiver.url + "/hooks"}).status_code == 200
        response = sandbox.post("/transaction", txn("pg_event"))
        assert response.status_code == 201
        havn_sandbox.wait_for_events(10)
    [hit] = received
    envelope = json.loads(hit["body"])
    assert envelope["type"] == "commission.distributed"
    assert envelope["data"]["transaction"]["transaction_id"] == response.json()["transaction"]["transaction_id"]
    assert [c["amount"] for c in envelope["data"]["commissions"]] == [500, 300, 200, 100, 100]
    # the plain-text secret is used as raw UTF-8 bytes, so give standardwebhooks the bytes
    assert Webhook(SANDBOX_WEBHOOK_SECRET.encode()).verify(hit["body"], hit["headers"]) == envelope
    assert sandbox.state()["event_status"][envelope["id"]] == "delivered"


# -- faults on the real sandbox ----------------------------------------------------


def test_drop_over_http_stores_the_transaction_but_no_answer_arrives(sandbox: Sandbox) -> None:
    assert sandbox.control("PUT", "/faults", json={"rates": {"drop": 1.0}}).status_code == 200
    with pytest.raises(requests.ConnectionError) as caught:
        sandbox.post("/transaction", txn("pg_dropped"))
    assert caught.value.response is None
    sandbox.control("DELETE", "/faults", json={})
    [stored] = sandbox.state()["transactions"]
    assert stored["payment_gateway_transaction_id"] == "pg_dropped"
    retry = sandbox.post("/transaction", txn("pg_dropped"))  # the client's retry is a replay
    assert retry.status_code == 201 and retry.json()["transaction"]["transaction_id"] == stored["transaction_id"]
    assert sandbox.state()["counts"]["transactions"] == 1


@pytest.mark.parametrize("kind", ["500", "502", "503", "429"])
def test_error_faults_store_nothing(sandbox: Sandbox, kind: str) -> None:
    sandbox.control("PUT", "/faults", json={"rates": {kind: 1.0}})
    response = sandbox.post("/transaction", txn("pg_fault"))
    assert response.status_code == int(kind)
    assert response.headers["X-Request-Id"]
    sandbox.control("DELETE", "/faults", json={})
    assert sandbox.state()["counts"]["transactions"] == 0


def test_burst_and_seeded_faults_are_reproducible(sandbox: Sandbox) -> None:
    spec = {"seed": 5, "burst_429": 2, "rates": {"503": 0.3, "500": 0.2}}

    def run() -> List[int]:
        sandbox.control("PUT", "/faults", json=spec)
        return [sandbox.get("/vouchers").status_code for _ in range(15)]

    first = run()
    assert first[:2] == [429, 429]
    assert {200, 500, 503} <= set(first[2:]) | {200}
    assert run() == first
    stats = sandbox.state()["faults"]["stats"]
    assert stats["requests"] == 15 and stats["burst_429"] == 2


def test_drop_and_hang_in_process(make_inprocess: Callable[..., Any]) -> None:
    app, client = make_inprocess()
    state = get_state(app)
    state.faults.configure({"rates": {"drop": 1.0}})
    with pytest.raises(requests.ConnectionError):
        client.post("/transaction", txn("pg_inproc"))
    state.faults.configure({"rates": {"hang": 1.0}, "hang_seconds": 30})
    with pytest.raises(requests.ReadTimeout):
        client.post("/transaction", txn("pg_hang"), timeout=(1, 0.05))
    state.faults.clear()
    assert [t["payment_gateway_transaction_id"] for t in client.state()["transactions"]] == ["pg_inproc"]


# -- the app itself -----------------------------------------------------------------


def test_bad_fault_config_names_the_key() -> None:
    with pytest.raises(HAVNConfigError, match="HAVN_SANDBOX_FAULTS"):
        create_app({"HAVN_SANDBOX_FAULTS": {"rates": {"500": 2}}})


def test_state_keeps_secrets_out_of_repr_and_closes_once(make_inprocess: Callable[..., Any]) -> None:
    app, _ = make_inprocess({"HAVN_API_KEY": "live-key-xyz", "HAVN_WEBHOOK_SECRET": "live-secret-xyz"}, seed=False)
    state = get_state(app)
    for text in (repr(state), repr(state.settings), repr(state.backend), repr(state.dispatcher)):
        assert "live-key-xyz" not in text and "live-secret-xyz" not in text
    assert not state.closed
    state.close()
    state.close()
    assert state.closed


def test_seeded_apps_give_the_same_event_ids(make_inprocess: Callable[..., Any]) -> None:
    ids = []
    for _ in range(2):
        app, client = make_inprocess({"HAVN_SANDBOX_SEED": 77})
        client.post("/transaction", txn("pg_seeded"))
        ids.append([e["id"] for e in get_state(app).dispatcher.events()])
    assert ids[0] == ids[1] and len(ids[0]) == 1
    app, client = make_inprocess({"HAVN_SANDBOX_SEED": 77})
    get_state(app).reset()
    client.control("POST", "/seed", json=HIERARCHY)
    client.post("/transaction", txn("pg_seeded"))
    assert [e["id"] for e in get_state(app).dispatcher.events()] == ids[0]


def test_get_state_refuses_other_apps() -> None:
    from flask import Flask

    with pytest.raises(RuntimeError, match="create_app"):
        get_state(Flask("other"))

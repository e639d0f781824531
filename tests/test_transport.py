"""Transport: wire format, signing, headers, retries and error mapping, over real loopback HTTP."""
from __future__ import annotations

import logging
import re

import pytest
import requests
from werkzeug.wrappers import Response

from _client_fixtures import *  # noqa: F401,F403 - fixtures
from _client_fixtures import API_KEY, SECRET, FakeClock, Script, json_response
from flask_havn.errors import (
    HAVNAPIError,
    HAVNAuthError,
    HAVNConfigError,
    HAVNConflictError,
    HAVNNetworkError,
    HAVNNotFoundError,
    HAVNRateLimitError,
    HAVNValidationError,
)
from flask_havn.signing import canonical_json, sign_body
from flask_havn.transport import Transport, error_from_response

VECTOR_PAYLOAD = {
    "amount": 10000, "currency": "USD", "customer_email": "customer@example.com",
    "payment_gateway": "STRIPE", "payment_gateway_transaction_id": "stripe_txn_001",
    "referral_code": "HAVN-MJ-001",
}
VECTOR_SIG = "06abae1c59b0c6857d9b7ec769ad9d423cbae40c540e31d0a89812e18ee322c6"
GET_SIG = "748a263298986af60d952005bd6587eb7fe36a5a9f1ddaf94ca4cb46729473cb"


# -- wire format and signing -------------------------------------------------


def test_post_body_is_the_signed_canonical_bytes_and_matches_the_contract_vector(script: Script, make_transport):
    # Insertion order deliberately scrambled: the wire bytes must still be canonical.
    payload = dict(reversed(list(VECTOR_PAYLOAD.items())))
    make_transport().request("POST", "/api/v1/webhook/transaction", payload=payload)
    (seen,) = script.seen
    assert seen.method == "POST" and seen.path == "/api/v1/webhook/transaction"
    assert seen.body == canonical_json(VECTOR_PAYLOAD)
    assert seen.body.startswith(b'{"amount":10000,"currency":"USD"')
    assert seen.headers["X-Signature"] == VECTOR_SIG


def test_get_signs_empty_object_and_sends_params_in_query(script: Script, make_transport):
    make_transport().request("GET", "/api/v1/webhook/vouchers",
                             params={"page": 2, "active": True, "is_expired": False, "search": None})
    (seen,) = script.seen
    assert seen.headers["X-Signature"] == GET_SIG
    assert seen.body == b""
    # Booleans as the official SDK sends them; None dropped.
    assert seen.args == {"page": "2", "active": "True", "is_expired": "False"}


def test_non_ascii_payload_is_escaped_and_signature_verifies(script: Script, make_transport):
    make_transport().request("POST", "/x", payload={"name": "Zoë 日本", "n": 1.5})
    (seen,) = script.seen
    assert seen.body == b'{"n":1.5,"name":"Zo\\u00eb \\u65e5\\u672c"}'
    assert seen.headers["X-Signature"] == sign_body(SECRET, seen.body)


def test_post_without_payload_sends_and_signs_empty_object(script: Script, make_transport):
    make_transport().request("POST", "/x")
    (seen,) = script.seen
    assert seen.body == b"{}"
    assert seen.headers["X-Signature"] == GET_SIG


def test_unserialisable_payload_raises_before_sending(script: Script, make_transport):
    with pytest.raises(HAVNValidationError, match="not JSON-serialisable") as info:
        make_transport().request("POST", "/x", payload={"when": object()})
    assert info.value.field == "payload"
    assert script.seen == []


def test_prepared_body_bytes_are_sent_and_signed_as_given(script: Script, make_transport):
    body = canonical_json(VECTOR_PAYLOAD)
    make_transport().request("POST", "/api/v1/webhook/transaction", body=body)
    (seen,) = script.seen
    assert seen.body == body and seen.headers["X-Signature"] == VECTOR_SIG
    with pytest.raises(HAVNValidationError) as info:
        make_transport().request("POST", "/x", payload={"a": 1}, body=b'{"a":1}')
    assert info.value.field == "body" and len(script.seen) == 1


@pytest.mark.parametrize("key", ["", "two\nlines", "k" * 256, "caf\u00e9", " padded"])
def test_hostile_idempotency_key_is_refused_before_sending(script: Script, make_transport, key):
    with pytest.raises(HAVNValidationError) as info:
        make_transport().request("POST", "/x", payload={}, idempotency_key=key)
    assert info.value.field == "idempotency_key"
    assert script.seen == []


# -- headers -------------------------------------------------------------------


def test_headers_on_post(script: Script, make_transport):
    make_transport().request("POST", "/x", payload={"a": 1})
    h = script.seen[0].headers
    assert h["X-Api-Key"] == API_KEY
    assert h["Accept"] == "application/json"
    assert h["Content-Type"] == "application/json"
    assert re.fullmatch(r"flask-havn/\S+ python-requests/\S+", h["User-Agent"])
    assert re.fullmatch(r"[0-9a-f]{32}", h["Idempotency-Key"])
    assert "X-Test-Mode" not in h


def test_headers_on_get(script: Script, make_transport):
    make_transport().request("GET", "/x")
    h = script.seen[0].headers
    assert h["X-Api-Key"] == API_KEY and h["Accept"] == "application/json"
    assert "Content-Type" not in h  # no body, no content type (contract §11.11)
    assert "Idempotency-Key" not in h
    assert "X-Test-Mode" not in h


def test_test_mode_header_only_in_test_mode(script: Script, make_transport):
    make_transport(test_mode=True).request("GET", "/x")
    make_transport(test_mode=True).request("POST", "/x", payload={"a": 1})
    make_transport(test_mode=False).request("POST", "/x", payload={"a": 1})
    assert [s.headers.get("X-Test-Mode") for s in script.seen] == ["true", "true", None]


def test_caller_idempotency_key_is_sent(script: Script, make_transport):
    make_transport().request("POST", "/x", payload={}, idempotency_key="order-42")
    assert script.seen[0].headers["Idempotency-Key"] == "order-42"


def test_idempotency_key_same_across_retries_and_new_per_call(script: Script, make_transport):
    script.reply(json_response({}, 503), json_response({}, 502), json_response({"success": True}))
    transport = make_transport()
    transport.request("POST", "/x", payload={"a": 1})
    keys = [s.headers["Idempotency-Key"] for s in script.seen]
    assert len(keys) == 3 and len(set(keys)) == 1
    transport.request("POST", "/x", payload={"a": 1})
    assert script.seen[3].headers["Idempotency-Key"] != keys[0]


# -- success bodies --------------------------------------------------------------


@pytest.mark.parametrize("reply, expected", [
    (Response(b"", status=200), {"success": True}),
    (Response(b"OK", status=201, content_type="text/plain"), {"success": True}),
    (Response(b"<html>", status=200, content_type="application/json"), {"success": True}),
    (json_response([1, 2]), {"success": True, "data": [1, 2]}),
    (json_response({"success": True, "extra": {"x": 1}}, 201), {"success": True, "extra": {"x": 1}}),
])
def test_success_bodies(script: Script, make_transport, reply, expected):
    script.reply(reply)
    assert make_transport().request("POST", "/x", payload={}) == expected


def test_redirect_is_not_followed_and_explained(script: Script, make_transport):
    script.reply(Response(b"", status=302, headers={"Location": "https://elsewhere.example/login"}))
    with pytest.raises(HAVNAPIError, match="HAVN_BASE_URL") as info:
        make_transport().request("POST", "/x", payload={})
    assert info.value.status_code == 302
    assert len(script.seen) == 1


# -- retries -----------------------------------------------------------------------


def test_503_is_retried_max_retries_times_with_exponential_jittered_backoff(
        script: Script, make_transport, clock: FakeClock):
    script.reply(json_response({"error": "Unavailable", "message": "down"}, 503))
    transport = make_transport(max_retries=3, backoff_factor=0.5, jitter=lambda: 0.5)
    with pytest.raises(HAVNAPIError) as info:
        transport.request("POST", "/x", payload={"a": 1})
    assert len(script.seen) == 4
    assert clock.sleeps == [0.75, 1.5, 3.0]
    err = info.value
    assert type(err) is HAVNAPIError
    assert err.status_code == 503 and err.error_type == "Unavailable"
    assert err.response == {"error": "Unavailable", "message": "down"}
    assert err.message.startswith("down (HTTP 503 Unavailable on POST /x)")
    assert "try again later" in err.message


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_then_success(script: Script, make_transport, clock: FakeClock, status):
    script.reply(json_response({}, status), json_response({"success": True, "n": 1}))
    assert make_transport(max_retries=1).request("GET", "/x") == {"success": True, "n": 1}
    assert len(script.seen) == 2 and clock.sleeps == [0.5]


def test_max_retries_zero_means_one_attempt(script: Script, make_transport, clock: FakeClock):
    script.reply(json_response({}, 500))
    with pytest.raises(HAVNAPIError):
        make_transport(max_retries=0).request("GET", "/x")
    assert len(script.seen) == 1 and clock.sleeps == []


@pytest.mark.parametrize("status, cls", [(400, HAVNAPIError), (404, HAVNNotFoundError), (422, HAVNAPIError),
                                         (401, HAVNAuthError), (409, HAVNConflictError), (403, HAVNAPIError)])
def test_other_4xx_are_not_retried(script: Script, make_transport, clock: FakeClock, status, cls):
    script.reply(json_response({"error": "E", "message": "nope"}, status))
    with pytest.raises(cls) as info:
        make_transport().request("POST", "/x", payload={})
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert len(script.seen) == 1 and clock.sleeps == []


def test_rate_limit_reset_is_honoured_and_error_carries_headers(script: Script, make_transport, clock: FakeClock):
    def limited(_seen):
        return json_response({"error": "RateLimited", "message": "slow down"}, 429, {
            "X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(clock.now) + 25),
        })

    script.reply(limited)
    transport = make_transport(max_retries=3, max_total_wait=60)
    with pytest.raises(HAVNRateLimitError) as info:
        transport.request("POST", "/api/v1/webhook/login", payload={"email": "a@b.co"})
    # 25 s twice (each ≥ reset - clock); a third 25 s would pass the 60 s budget: stop.
    assert clock.sleeps == [25.0, 25.0]
    assert len(script.seen) == 3
    err = info.value
    assert err.status_code == 429 and err.error_type == "RateLimited"
    assert err.retry_after == 25.0 and err.limit == 20 and err.remaining == 0
    assert "slow down" in err.message and "retry_after" in err.message


def test_rate_limit_reset_in_the_past_falls_back_to_backoff(script: Script, make_transport, clock: FakeClock):
    script.reply(json_response({}, 429, {"X-RateLimit-Reset": str(int(clock.now) - 100)}),
                 json_response({"success": True}))
    make_transport(backoff_factor=0.5).request("GET", "/x")
    assert clock.sleeps == [0.5]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_rate_limit_reset_on_a_5xx_with_requests_left_is_not_a_wait(
        script: Script, make_transport, clock: FakeClock, status):
    # HAVN sends X-RateLimit-* on every answer: a 5xx with 59 requests left must not wait until Reset.
    def unavailable(_seen):
        return json_response({"error": "Unavailable", "message": "down"}, status, {
            "X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "59",
            "X-RateLimit-Reset": str(int(clock.now) + 50),
        })

    script.reply(unavailable, unavailable, json_response({"success": True}))
    assert make_transport(max_retries=3, backoff_factor=0.5).request("POST", "/x", payload={}) == {"success": True}
    assert clock.sleeps == [0.5, 1.0]  # the normal backoff only
    assert len(script.seen) == 3


def test_rate_limit_reset_still_waits_on_a_429_with_the_same_headers(
        script: Script, make_transport, clock: FakeClock):
    def limited(_seen):
        return json_response({"error": "RateLimited", "message": "slow down"}, 429, {
            "X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "59",
            "X-RateLimit-Reset": str(int(clock.now) + 50),
        })

    script.reply(limited, json_response({"success": True}))
    make_transport(max_retries=3, max_total_wait=60).request("POST", "/x", payload={})
    assert clock.sleeps == [50.0]


def test_rate_limit_reset_is_honoured_on_a_5xx_when_nothing_remains(script: Script, make_transport, clock: FakeClock):
    script.reply(json_response({}, 503, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(clock.now) + 20)}),
                 json_response({"success": True}))
    make_transport(max_total_wait=60).request("GET", "/x")
    assert clock.sleeps == [20.0]


def test_retry_after_is_honoured_on_a_5xx_with_requests_left(script: Script, make_transport, clock: FakeClock):
    script.reply(json_response({}, 503, {"Retry-After": "9", "X-RateLimit-Remaining": "59",
                                         "X-RateLimit-Reset": str(int(clock.now) + 50)}),
                 json_response({"success": True}))
    make_transport(max_total_wait=60).request("GET", "/x")
    assert clock.sleeps == [9.0]


def test_retry_after_seconds_is_honoured(script: Script, make_transport, clock: FakeClock):
    script.reply(json_response({}, 503, {"Retry-After": "7"}), json_response({"success": True}))
    make_transport().request("GET", "/x")
    assert clock.sleeps == [7.0]


def test_retry_after_http_date_is_honoured(script: Script, make_transport, clock: FakeClock):
    clock.now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    script.reply(json_response({}, 503, {"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT"}),
                 json_response({"success": True}))
    make_transport().request("GET", "/x")
    assert clock.sleeps == [10.0]


def test_server_wait_longer_than_budget_raises_at_once(script: Script, make_transport, clock: FakeClock):
    script.reply(json_response({}, 429, {"Retry-After": "120", "X-RateLimit-Limit": "x-garbage"}))
    with pytest.raises(HAVNRateLimitError) as info:
        make_transport(max_total_wait=60).request("GET", "/x")
    assert len(script.seen) == 1 and clock.sleeps == []
    assert info.value.retry_after == 120.0
    assert info.value.limit is None and info.value.remaining is None  # garbage and missing → None


def test_total_wait_never_exceeds_budget(script: Script, make_transport, clock: FakeClock):
    script.reply(json_response({}, 503))
    with pytest.raises(HAVNAPIError):
        make_transport(max_retries=10, backoff_factor=1, max_total_wait=10).request("GET", "/x")
    assert clock.sleeps == [1, 2, 4]  # the next (8) would reach 15 > 10
    assert sum(clock.sleeps) <= 10


def test_garbage_rate_limit_headers_do_not_crash(script: Script, make_transport, clock: FakeClock):
    script.reply(json_response(None, 429, {"X-RateLimit-Reset": "soon", "Retry-After": "later",
                                           "X-RateLimit-Remaining": "4.0"}))
    with pytest.raises(HAVNRateLimitError) as info:
        make_transport(max_retries=1).request("GET", "/x")
    assert clock.sleeps == [0.5]
    assert info.value.retry_after is None and info.value.remaining == 4
    assert info.value.response is None
    assert info.value.message.startswith("HAVN answered 429")


# -- network errors ------------------------------------------------------------------


def test_closed_port_is_a_network_error_after_retries(closed_port_url, clock: FakeClock):
    with Transport(api_key=API_KEY, webhook_secret=SECRET, base_url=closed_port_url, max_retries=2,
                   sleep=clock.sleep, clock=clock, jitter=lambda: 0.0) as transport:
        with pytest.raises(HAVNNetworkError) as info:
            transport.request("POST", "/api/v1/webhook/transaction", payload={"a": 1})
    assert clock.sleeps == [0.5, 1.0]
    msg = info.value.message
    assert "could not connect" in msg and "HAVN_BASE_URL" in msg and "3 attempts" in msg
    assert info.value.status_code is None


def test_hanging_server_times_out_into_network_error(hanging_url, clock: FakeClock):
    with Transport(api_key=API_KEY, webhook_secret=SECRET, base_url=hanging_url, timeout=0.05,
                   max_retries=1, sleep=clock.sleep, clock=clock, jitter=lambda: 0.0) as transport:
        with pytest.raises(HAVNNetworkError) as info:
            transport.request("GET", "/x")
    assert clock.sleeps == [0.5]  # the read timeout was retried once
    assert "did not answer within 0.05s" in info.value.message
    assert "HAVN_TIMEOUT" in info.value.message


# -- error mapping -----------------------------------------------------------------------


def _response(status, body=b"", headers=None, url="https://api.havn.com/api/v1/webhook/transaction"):
    resp = requests.Response()
    resp.status_code = status
    resp._content = body
    resp.headers.update(headers or {})
    resp.request = requests.Request("POST", url).prepare()
    return resp


def test_error_from_response_maps_classes_and_fields():
    r = error_from_response(_response(404, b'{"error":"NotFound","message":"Referral code not found"}',
                                      {"X-Request-Id": "req_9"}))
    assert type(r) is HAVNNotFoundError
    assert (r.status_code, r.error_type, r.request_id) == (404, "NotFound", "req_9")
    assert r.message.startswith("Referral code not found (HTTP 404 NotFound on POST /api/v1/webhook/transaction)")
    assert "req_9" in r.message
    assert type(error_from_response(_response(401, b"{}"))) is HAVNAuthError
    assert "HAVN_API_KEY" in error_from_response(_response(401, b"{}")).message
    assert type(error_from_response(_response(409, b"not json"))) is HAVNConflictError
    other = error_from_response(_response(418, b'["a"]'))
    assert type(other) is HAVNAPIError and other.response is None and other.error_type is None
    assert other.message.startswith("HAVN answered 418")


def test_error_from_response_rate_limit_uses_clock():
    resp = _response(429, b"", {"X-RateLimit-Reset": "1000", "X-RateLimit-Limit": "20",
                                "X-RateLimit-Remaining": "0"})
    err = error_from_response(resp, clock=lambda: 990.0)
    assert isinstance(err, HAVNRateLimitError)
    assert (err.retry_after, err.limit, err.remaining) == (10.0, 20, 0)
    assert error_from_response(resp, clock=lambda: 2000.0).retry_after == 0


def test_error_from_response_scrubs_secrets_from_message_and_body():
    body = f'{{"error":"Auth","message":"bad key {API_KEY} for secret {SECRET}","echo":["{SECRET}"]}}'.encode()
    err = error_from_response(_response(401, body), redact=(API_KEY, SECRET))
    assert API_KEY not in str(err) and SECRET not in str(err) and SECRET not in repr(err)
    assert "bad key *** for secret ***" in err.message
    assert err.response == {"error": "Auth", "message": "bad key *** for secret ***", "echo": ["***"]}


def test_long_server_text_is_truncated_after_scrubbing():
    secret = "s3cr3t-value"
    body = ('{"message":"' + "x" * 495 + secret + '"}').encode()  # the secret straddles the cut
    err = error_from_response(_response(500, body), redact=(secret,))
    assert "s3cr" not in err.message
    assert err.message.startswith("x" * 495 + "***"[:5])
    assert len(err.message) < 700
    huge = error_from_response(_response(500, ('{"message":"' + "y" * 5000 + '"}').encode()))
    assert "y" * 500 + "…" in huge.message and "y" * 501 not in huge.message


def test_server_echoing_secrets_is_scrubbed_through_the_wire(script: Script, make_transport):
    script.reply(lambda seen: json_response(
        {"error": "Unauthorized", "message": f"key {seen.headers['X-Api-Key']} is wrong"}, 401))
    with pytest.raises(HAVNAuthError) as info:
        make_transport().request("GET", "/x")
    assert API_KEY not in str(info.value) and "key *** is wrong" in str(info.value)


# -- configuration, repr, logs ---------------------------------------------------------------


@pytest.mark.parametrize("options, needle", [
    ({"api_key": ""}, "api_key is missing"),
    ({"webhook_secret": None}, "webhook_secret is missing"),
    ({"api_key": " padded "}, "whitespace"),
    ({"api_key": "key\u2019s"}, "printable ASCII"),
    ({"api_key": "key\x00"}, "printable ASCII"),
    ({"base_url": "api.havn.com"}, "base_url"),
    ({"max_retries": -1}, "max_retries"),
    ({"timeout": 0}, "timeout"),
    ({"backoff_factor": "fast"}, "backoff_factor"),
])
def test_bad_configuration(options, needle):
    kw = dict(api_key=API_KEY, webhook_secret=SECRET)
    kw.update(options)
    with pytest.raises(HAVNConfigError, match=needle) as info:
        Transport(**kw)
    assert "padded" not in str(info.value)


def test_repr_shows_only_base_url_and_test_mode():
    with Transport(api_key=API_KEY, webhook_secret=SECRET, base_url="https://staging-api.havn.com/",
                   test_mode=True) as transport:
        text = repr(transport)
    assert text == "Transport(base_url='https://staging-api.havn.com', test_mode=True)"


def test_logs_attempts_without_secrets(script: Script, make_transport, caplog):
    script.reply(json_response({}, 503), json_response({"success": True}))
    with caplog.at_level(logging.DEBUG):
        make_transport().request("POST", "/x", payload={"a": 1})
    lines = [r.getMessage() for r in caplog.records if r.name == "flask_havn.transport"]
    assert lines == ["HAVN POST /x -> 503 (attempt 1); retrying in 0.500s", "HAVN POST /x -> 200 (attempt 2)"]
    assert all(API_KEY not in r.getMessage() and SECRET not in r.getMessage() for r in caplog.records)


def test_mount_routes_a_prefix_through_an_adapter(clock: FakeClock):
    class Canned(requests.adapters.BaseAdapter):
        def __init__(self):
            super().__init__()
            self.requests = []

        def send(self, request, **kwargs):
            self.requests.append(request)
            resp = requests.Response()
            resp.status_code = 200
            resp._content = b'{"success": true, "via": "adapter"}'
            resp.request = request
            return resp

        def close(self):
            pass

    adapter = Canned()
    with Transport(api_key=API_KEY, webhook_secret=SECRET, base_url="http://havn-sandbox.invalid") as t:
        t.mount("http://havn-sandbox.invalid", adapter)
        assert t.request("POST", "/api/v1/webhook/login", payload={"email": "a@b.co"}) == {
            "success": True, "via": "adapter"}
    (sent,) = adapter.requests
    assert sent.url == "http://havn-sandbox.invalid/api/v1/webhook/login"
    assert sent.body == b'{"email":"a@b.co"}'
    assert sent.headers["X-Signature"] == sign_body(SECRET, sent.body)


def test_an_answer_nested_too_deep_for_python_is_treated_as_no_json() -> None:
    """A 2xx whose JSON is too deep to parse is taken as a body-less success, not a RecursionError."""
    import requests as _requests

    from flask_havn.transport import _parse_json

    response = _requests.Response()
    response.status_code = 200
    response._content = b"[" * 100_000 + b"]" * 100_000
    assert _parse_json(response) is None
    response._content = b'{"success": true}'
    assert _parse_json(response) == {"success": True}

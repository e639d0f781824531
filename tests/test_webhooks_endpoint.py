"""The webhook endpoint over HTTP (test client, exact raw bytes): every rejection row of the contract."""
from __future__ import annotations

import base64
import io
import json
import logging
from datetime import datetime, timezone
from typing import Any, Dict

import pytest
from standardwebhooks.webhooks import Webhook

from flask_havn import signals
from flask_havn.signing import sign_webhook_message, webhook_headers
from flask_havn.webhook_testing import record_signals, sign_webhook
from flask_havn.webhooks import get_receiver

from _webhook_helpers import OLD_SECRET, PATH, SECRET, config, envelope, event_rows, post

NOW = 1_800_000_000
EVT = "evt_000000000000000000000001"


@pytest.fixture
def host(make_host: Any) -> Any:
    host = make_host(config())
    get_receiver(host.app).clock = lambda: float(NOW)
    return host


@pytest.fixture
def client(host: Any) -> Any:
    return host.app.test_client()


def _signed(payload: Any, secret: Any = SECRET, *, msg_id: str = EVT, timestamp: int = NOW) -> Any:
    return sign_webhook(payload, secret, msg_id=msg_id, timestamp=timestamp)


def _assert_nothing_happened(host: Any, sent: Any) -> None:
    assert event_rows(host) == {}
    assert sent == []


# -- the happy path and the generic answers --------------------------------


def test_valid_event_is_answered_200_and_stored(host: Any, client: Any) -> None:
    with record_signals() as sent:
        response = post(client, envelope(), timestamp=NOW)
    assert response.status_code == 200
    assert response.get_json() == {"received": True, "id": EVT, "status": "processed", "duplicate": False}
    assert event_rows(host)[EVT]["status"] == "processed"
    assert [s.name for s in sent] == ["havn.commission-distributed", "havn.webhook-received"]


def test_the_endpoint_path_follows_the_config(make_host: Any) -> None:
    host = make_host(config(HAVN_URL_PREFIX="/hooks/", HAVN_WEBHOOK_PATH="havn-events"))
    client = host.app.test_client()
    assert get_receiver(host.app).path == "/hooks/havn-events"
    assert post(client, envelope(), path="/hooks/havn-events").status_code == 200
    assert client.post(PATH).status_code == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_wrong_method_is_405_json(host: Any, client: Any, method: str) -> None:
    response = client.open(PATH, method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.get_json()["error"] == "method_not_allowed"
    assert event_rows(host) == {}


# -- 400: headers ------------------------------------------------------------


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_400(host: Any, client: Any, missing: str) -> None:
    body, headers = _signed(envelope())
    del headers[missing]
    with record_signals() as sent:
        response = client.post(PATH, data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid_request", "message": "invalid webhook headers"}
    _assert_nothing_happened(host, sent)


MALFORMED = [
    ("webhook-id", "evt_1.2"),
    ("webhook-id", "evt 1"),
    ("webhook-id", "e" * 257),
    ("webhook-id", ""),
    ("webhook-timestamp", "abc"),
    ("webhook-timestamp", "-1800000000"),
    ("webhook-timestamp", "1800000000.5"),
    ("webhook-timestamp", "１８００"),
    ("webhook-timestamp", "9" * 40),
    ("webhook-timestamp", ""),
    ("webhook-signature", "v1,"),
    ("webhook-signature", "v2,abcd"),
    ("webhook-signature", "abcd"),
    ("webhook-signature", ",,, ,"),
    ("webhook-signature", ""),
]


@pytest.mark.parametrize("name,value", MALFORMED)
def test_a_malformed_header_is_400(host: Any, client: Any, name: str, value: str) -> None:
    body, headers = _signed(envelope())
    headers[name] = value
    with record_signals() as sent:
        response = client.post(PATH, data=body, headers=headers)
    assert response.status_code == 400
    _assert_nothing_happened(host, sent)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
@pytest.mark.parametrize("value", ["\u00e9t\u00e9", "v1,\u00ff\u00fe", "\u0000", "x" * 9000, "v1,=="])
def test_hostile_header_bytes_never_give_500(host: Any, client: Any, name: str, value: str) -> None:
    body, headers = _signed(envelope())
    headers[name] = value
    response = client.post(PATH, data=body, headers=headers)
    assert response.status_code in (400, 401)
    assert response.is_json
    assert event_rows(host) == {}


def test_header_names_are_case_insensitive(host: Any, client: Any) -> None:
    body, headers = _signed(envelope())
    shouted = {name.upper(): value for name, value in headers.items()}
    assert client.post(PATH, data=body, headers=shouted).status_code == 200


# -- 401: signature and timestamp ---------------------------------------------


def test_a_wrong_secret_is_401(host: Any, client: Any) -> None:
    body, headers = _signed(envelope(), "another-secret")
    with record_signals() as sent:
        response = client.post(PATH, data=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"error": "invalid_signature", "message": "invalid signature"}
    _assert_nothing_happened(host, sent)


@pytest.mark.parametrize("skew,status", [(-301, 401), (-300, 200), (0, 200), (300, 200), (301, 401)])
def test_timestamp_tolerance_boundaries(host: Any, client: Any, skew: int, status: int) -> None:
    response = post(client, envelope(), timestamp=NOW + skew)
    assert response.status_code == status
    assert (EVT in event_rows(host)) is (status == 200)


def test_tolerance_follows_the_config(make_host: Any) -> None:
    host = make_host(config(HAVN_WEBHOOK_TOLERANCE=10))
    get_receiver(host.app).clock = lambda: float(NOW)
    client = host.app.test_client()
    assert post(client, envelope(), timestamp=NOW - 11).status_code == 401
    assert post(client, envelope(), timestamp=NOW - 10).status_code == 200


def test_a_byte_changed_anywhere_in_the_body_is_401(host: Any, client: Any) -> None:
    body, headers = _signed(envelope("x.y", data={"k": "v"}))
    for position in range(len(body)):
        changed = bytearray(body)
        changed[position] ^= 0x01
        response = client.post(PATH, data=bytes(changed), headers=headers)
        assert response.status_code == 401, position
    assert client.post(PATH, data=body + b" ", headers=headers).status_code == 401
    assert client.post(PATH, data=body[:-1], headers=headers).status_code == 401
    assert event_rows(host) == {}


def test_a_changed_id_or_timestamp_is_401(host: Any, client: Any) -> None:
    body, headers = _signed(envelope())
    for name, value in (("webhook-id", EVT[:-1] + "2"), ("webhook-id", EVT + "x"),
                        ("webhook-timestamp", str(NOW + 1)), ("webhook-timestamp", str(NOW - 1))):
        response = client.post(PATH, data=body, headers={**headers, name: value})
        assert response.status_code == 401, (name, value)
    assert event_rows(host) == {}


def test_a_signature_of_the_canonical_json_is_not_enough(host: Any, client: Any) -> None:
    """The signature covers the raw bytes: the same JSON written differently does not verify."""
    payload = envelope()
    signed_body, headers = _signed(payload)
    respaced = json.dumps(payload, indent=2).encode("utf-8")
    assert respaced != signed_body
    assert client.post(PATH, data=respaced, headers=headers).status_code == 401


# -- secrets: rotation and whsec_ ----------------------------------------------


@pytest.fixture
def rotating(make_host: Any) -> Any:
    host = make_host(config(HAVN_WEBHOOK_SECRETS=[OLD_SECRET]))
    get_receiver(host.app).clock = lambda: float(NOW)
    return host


def test_rotation_accepts_the_old_and_the_new_secret(rotating: Any) -> None:
    client = rotating.app.test_client()
    assert post(client, envelope(event_id="evt_old"), OLD_SECRET, timestamp=NOW).status_code == 200
    assert post(client, envelope(event_id="evt_new"), SECRET, timestamp=NOW).status_code == 200
    assert post(client, envelope(event_id="evt_bad"), "neither", timestamp=NOW).status_code == 401
    assert set(event_rows(rotating)) == {"evt_old", "evt_new"}


def test_rotation_two_signatures_in_one_header(rotating: Any) -> None:
    client = rotating.app.test_client()
    body = json.dumps(envelope()).encode()
    headers = webhook_headers(["retired-secret", OLD_SECRET], EVT, body, timestamp=NOW)
    assert len(headers["webhook-signature"].split()) == 2
    assert client.post(PATH, data=body, headers=headers).status_code == 200
    assert event_rows(rotating)[EVT]["status"] == "processed"


def test_two_signatures_none_matching_is_401(rotating: Any) -> None:
    client = rotating.app.test_client()
    body = json.dumps(envelope()).encode()
    headers = webhook_headers(["retired-secret", "other"], EVT, body, timestamp=NOW)
    assert client.post(PATH, data=body, headers=headers).status_code == 401


def _whsec() -> str:
    return "whsec_" + base64.b64encode(bytes(range(32))).decode()


def test_whsec_secret_uses_the_decoded_key(make_host: Any) -> None:
    secret = _whsec()
    host = make_host(config(HAVN_WEBHOOK_SECRET=secret))
    client = host.app.test_client()
    body = json.dumps(envelope()).encode()
    ts = int(datetime.now(timezone.utc).timestamp())
    # Signed with the raw decoded bytes as key: the "whsec_" text itself is not the key.
    raw = base64.b64decode(secret[len("whsec_"):])
    import hashlib
    import hmac

    digest = hmac.new(raw, f"{EVT}.{ts}.".encode() + body, hashlib.sha256).digest()
    headers = {"webhook-id": EVT, "webhook-timestamp": str(ts),
               "webhook-signature": "v1," + base64.b64encode(digest).decode()}
    assert client.post(PATH, data=body, headers=headers).status_code == 200
    literal = hmac.new(secret.encode(), f"{EVT}.{ts}.".encode() + body, hashlib.sha256).digest()
    headers["webhook-signature"] = "v1," + base64.b64encode(literal).decode()
    headers["webhook-id"] = "evt_other"
    assert client.post(PATH, data=body.replace(EVT.encode(), b"evt_other"), headers=headers).status_code == 401


def test_events_signed_by_the_standardwebhooks_package_are_accepted(make_host: Any) -> None:
    secret = _whsec()
    host = make_host(config(HAVN_WEBHOOK_SECRET=secret))
    client = host.app.test_client()
    body_text = json.dumps(envelope(), ensure_ascii=False)
    now = datetime.now(timezone.utc)
    signature = Webhook(secret).sign(EVT, now, body_text)
    headers = {"webhook-id": EVT, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature,
               "Content-Type": "application/json"}
    with record_signals(signals.webhook_received) as sent:
        response = client.post(PATH, data=body_text.encode("utf-8"), headers=headers)
    assert response.status_code == 200
    assert [s.kwargs["event"].id for s in sent] == [EVT]


def test_our_signature_verifies_with_the_standardwebhooks_package() -> None:
    secret = _whsec()
    body, headers = sign_webhook(envelope(), secret)
    assert Webhook(secret).verify(body.decode("utf-8"), headers)["id"] == EVT


# -- 400: the envelope -----------------------------------------------------------


NOT_ENVELOPES = [
    b"[]",
    b'"evt"',
    b"42",
    b"null",
    b"true",
    b"",
    b"{",
    b"\xff\xfe{}",
    b'\xef\xbb\xbf{"id": "evt_000000000000000000000001", "type": "a", "data": {}}',
    b'{"id": "evt_000000000000000000000001", "type": "a", "data": {"x": NaN}}',
    b'{"id": "evt_000000000000000000000001", "type": "a", "data": {"x": Infinity}}',
    b"[" * 100000 + b"]" * 100000,
]


@pytest.mark.parametrize("body", NOT_ENVELOPES, ids=range(len(NOT_ENVELOPES)))
def test_a_body_that_is_not_a_json_object_is_400(make_host: Any, body: bytes) -> None:
    host = make_host(config(HAVN_WEBHOOK_MAX_BYTES=1_000_000))
    client = host.app.test_client()
    headers = webhook_headers([SECRET], EVT, body)
    with record_signals() as sent:
        response = client.post(PATH, data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid_payload", "message": "invalid payload"}
    _assert_nothing_happened(host, sent)


def _without(key: str) -> Dict[str, Any]:
    payload = envelope()
    del payload[key]
    return payload


BAD_ENVELOPES = [
    _without("id"),
    _without("type"),
    _without("data"),
    {**envelope(), "id": "evt_someone_else"},
    {**envelope(), "id": 1},
    {**envelope(), "type": ""},
    {**envelope(), "type": None},
    {**envelope(), "type": "t" * 101},
    {**envelope(), "data": []},
    {**envelope(), "data": "x"},
    {**envelope(), "data": None},
    {**envelope(), "test_mode": "yes"},
    {**envelope(), "created_at": 12},
    {**envelope(), "created_at": "2026" * 20},
]


@pytest.mark.parametrize("payload", BAD_ENVELOPES, ids=range(len(BAD_ENVELOPES)))
def test_an_envelope_lacking_fields_is_400(host: Any, client: Any, payload: Dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    with record_signals() as sent:
        response = client.post(PATH, data=body, headers=webhook_headers([SECRET], EVT, body, timestamp=NOW))
    assert response.status_code == 400
    _assert_nothing_happened(host, sent)


def test_an_id_longer_than_the_column_is_400(host: Any, client: Any) -> None:
    long_id = "evt_" + "a" * 120
    body = json.dumps(envelope(event_id=long_id)).encode()
    response = client.post(PATH, data=body, headers=webhook_headers([SECRET], long_id, body, timestamp=NOW))
    assert response.status_code == 400
    assert event_rows(host) == {}


def test_unicode_payloads_round_trip(host: Any, client: Any) -> None:
    data = {"note": "Zahlung für Café 東京 — 🎉", "rtl": "\u05e9\u05dc\u05d5\u05dd", "nul": "a\u0000b",
            "surrogate_pair": "\U0001f600", "nested": {"ключ": ["значение", 1, None, True]}}
    payload = envelope("custom.unicode", data=data)
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    assert "東京".encode("utf-8") in body
    with record_signals(signals.webhook_received) as sent:
        response = client.post(PATH, data=body, headers=webhook_headers([SECRET], EVT, body, timestamp=NOW))
    assert response.status_code == 200
    assert sent[0].kwargs["event"].data == data
    assert event_rows(host)[EVT]["payload"]["data"] == data


# -- 413: size ------------------------------------------------------------------


@pytest.fixture
def small(make_host: Any) -> Any:
    host = make_host(config(HAVN_WEBHOOK_MAX_BYTES=1024))
    get_receiver(host.app).clock = lambda: float(NOW)
    return host


def _sized(size: int) -> bytes:
    payload = envelope("x.y", data={"pad": ""})
    base = len(json.dumps(payload).encode())
    payload["data"]["pad"] = "p" * (size - base)
    body = json.dumps(payload).encode()
    assert len(body) == size
    return body


def test_a_body_at_the_limit_is_accepted(small: Any) -> None:
    body = _sized(1024)
    headers = webhook_headers([SECRET], EVT, body, timestamp=NOW)
    assert small.app.test_client().post(PATH, data=body, headers=headers).status_code == 200


def test_a_body_over_the_limit_is_413_even_when_signed(small: Any) -> None:
    body = _sized(1025)
    headers = webhook_headers([SECRET], EVT, body, timestamp=NOW)
    response = small.app.test_client().post(PATH, data=body, headers=headers)
    assert response.status_code == 413
    assert response.get_json() == {"error": "payload_too_large", "message": "payload too large"}
    assert event_rows(small) == {}


def test_a_body_without_content_length_is_read_only_up_to_the_limit(small: Any) -> None:
    big = io.BytesIO(b"{" + b" " * 10_000_000 + b"}")
    response = small.app.test_client().post(
        PATH, input_stream=big, headers={"webhook-id": EVT, "webhook-timestamp": str(NOW),
                                         "webhook-signature": "v1,x"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert big.tell() <= 1025
    assert event_rows(small) == {}


def test_the_apps_own_max_content_length_answers_json_413(make_host: Any) -> None:
    host = make_host(config(MAX_CONTENT_LENGTH=100))
    body = json.dumps(envelope()).encode()
    response = host.app.test_client().post(
        PATH, input_stream=io.BytesIO(body), headers=webhook_headers([SECRET], EVT, body),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


# -- logging: the reason server-side, never the secret or the signature ------------


def test_rejections_are_logged_with_reason_but_no_secret(host: Any, client: Any, caplog: Any) -> None:
    body, headers = _signed(envelope(), "wrong-secret")
    with caplog.at_level(logging.INFO, logger="flask_havn.webhooks"):
        assert client.post(PATH, data=body, headers=headers).status_code == 401
        assert post(client, envelope(), timestamp=NOW - 3600).status_code == 401
        assert client.post(PATH, data=b"[]", headers=webhook_headers([SECRET], EVT, b"[]", timestamp=NOW)
                           ).status_code == 400
    text = caplog.text
    assert "no matching webhook signature" in text
    assert "outside tolerance" in text
    assert "not a JSON object" in text
    signature = headers["webhook-signature"]
    for secret_text in (SECRET, "wrong-secret", signature, signature[3:],
                        sign_webhook_message(SECRET, EVT, NOW, body)[3:]):
        assert secret_text not in text
    for record in caplog.records:
        assert record.name == "flask_havn.webhooks"


def test_error_bodies_do_not_say_which_check_failed(host: Any, client: Any) -> None:
    stale = post(client, envelope(), timestamp=NOW - 3600).get_json()
    wrong = post(client, envelope(), "x", timestamp=NOW).get_json()
    assert stale == wrong == {"error": "invalid_signature", "message": "invalid signature"}


def _with_data(**changes: Any) -> Dict[str, Any]:
    payload = envelope()
    data = json.loads(json.dumps(payload["data"]))
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = value
    payload["data"] = data
    return payload


HUGE_INTEGERS = [
    _with_data(total_commission=10 ** 30),
    _with_data(total_commission=2 ** 63),
    _with_data(total_commission=-1),
    _with_data(commissions__0__amount=10 ** 30),
    _with_data(commissions__1__amount=-5000),
    _with_data(transaction__amount=10 ** 30),
    _with_data(transaction__amount_usd=2 ** 64),
    _with_data(expected_amount=10 ** 19),
    _with_data(note={"deep": [1, 2, -(2 ** 63) - 1]}),  # anywhere: no BIGINT holds it
]


@pytest.mark.parametrize("payload", HUGE_INTEGERS, ids=range(len(HUGE_INTEGERS)))
def test_an_integer_no_bigint_holds_is_400_not_500_on_every_retry(host: Any, client: Any,
                                                                  payload: Dict[str, Any]) -> None:
    from _webhook_helpers import add_payment, payment_row

    payment_id = add_payment(host)
    with record_signals() as sent:
        for _ in range(2):  # the sender's retry gets the same answer
            body, headers = _signed(payload)
            response = client.post(PATH, data=body, headers=headers)
            assert response.status_code == 400
            assert response.get_json() == {"error": "invalid_payload", "message": "invalid payload"}
    _assert_nothing_happened(host, sent)
    assert payment_row(host, payment_id)["delivery_state"] == "pending"


def test_the_largest_bigint_is_accepted(host: Any, client: Any) -> None:
    from _webhook_helpers import add_payment, payment_row

    payment_id = add_payment(host)
    body, headers = _signed(_with_data(total_commission=2 ** 63 - 1, note=-(2 ** 63)))
    assert client.post(PATH, data=body, headers=headers).status_code == 200
    assert payment_row(host, payment_id)["total_commission"] == 2 ** 63 - 1
    assert event_rows(host)[EVT]["status"] == "processed"

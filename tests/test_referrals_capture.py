"""Referral links, the capture: ?ref=&vc= into a signed, timestamped first-party cookie (flask_havn.referrals)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest
from flask import jsonify

from flask_havn import current_referral
from flask_havn.errors import HAVNConfigError

START = 1_800_000_000.0  # epoch seconds of the captures below (2027-01-15)
DAY = 86400


class Clock:
    """A clock tests move by hand (no sleeps)."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _capture_host(make_host: Any, config: Optional[Dict[str, Any]] = None) -> Any:
    host = make_host({"SECRET_KEY": "capture-test-key", "HAVN_CAPTURE_REFERRALS": True, **(config or {})})
    clock = Clock()
    host.app.extensions["havn"].referrals.clock = clock
    host.clock = clock

    @host.app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        referral = current_referral._get_current_object()  # type: ignore[attr-defined]
        if referral is None:
            return jsonify(None)
        return jsonify({"code": referral.code, "voucher": referral.voucher,
                        "captured_at": int(referral.captured_at.timestamp())})

    return host


def _cookie(client: Any, name: str = "havn_referral") -> Any:
    return client.get_cookie(name)


def _set_cookie_headers(response: Any) -> List[str]:
    return [value for key, value in response.headers.items() if key.lower() == "set-cookie"]


def test_a_get_with_ref_and_vc_is_captured_in_a_signed_httponly_lax_cookie(make_host: Any) -> None:
    host = _capture_host(make_host)
    client = host.app.test_client()
    response = client.get("/login?ref=havn-mj-001&vc=HAVN-MJ-SE-ABC123")
    assert response.status_code == 200
    assert response.json == {"code": "HAVN-MJ-001", "voucher": "HAVN-MJ-SE-ABC123", "captured_at": int(START)}
    (header,) = _set_cookie_headers(response)
    assert header.startswith("havn_referral=")
    assert "HttpOnly" in header and "SameSite=Lax" in header and f"Max-Age={30 * DAY}" in header
    assert "Secure" not in header  # plain http request
    cookie = _cookie(client)
    assert cookie.value.count(".") == 2 and cookie.value != "HAVN-MJ-001"  # payload.timestamp.signature
    # A later request, without parameters, still knows it:
    assert client.get("/login").json == {"code": "HAVN-MJ-001", "voucher": "HAVN-MJ-SE-ABC123",
                                         "captured_at": int(START)}


def test_the_cookie_is_secure_on_an_https_request(make_host: Any) -> None:
    host = _capture_host(make_host)
    response = host.app.test_client().get("/login?ref=HAVN-MJ-001", base_url="https://shop.example")
    (header,) = _set_cookie_headers(response)
    assert "Secure" in header


def test_nothing_is_captured_while_capture_is_off(make_host: Any) -> None:
    host = make_host({"SECRET_KEY": "k"})

    @host.app.route("/login")
    def login() -> Any:
        return jsonify(current_referral._get_current_object() is None)  # type: ignore[attr-defined]

    client = host.app.test_client()
    response = client.get("/login?ref=HAVN-MJ-001")
    assert response.json is True
    assert _set_cookie_headers(response) == []


def test_capture_referrals_turns_it_on_for_the_extensions_apps(make_host: Any) -> None:
    host = make_host({"SECRET_KEY": "k"})
    host.havn.capture_referrals()

    @host.app.route("/login")
    def login() -> Any:
        return jsonify(current_referral.code)  # type: ignore[union-attr]

    assert host.app.test_client().get("/login?ref=HAVN-MJ-001").json == "HAVN-MJ-001"


def test_capture_needs_a_signing_key(make_host: Any) -> None:
    with pytest.raises(HAVNConfigError, match="SECRET_KEY"):
        make_host({"HAVN_CAPTURE_REFERRALS": True})


def test_the_referral_secret_signs_the_cookie_instead_of_the_app_key(make_host: Any) -> None:
    a = _capture_host(make_host, {"HAVN_REFERRAL_SECRET": "referral-only-key"})
    client = a.app.test_client()
    client.get("/login?ref=HAVN-MJ-001")
    value = _cookie(client).value
    # Another app with the same SECRET_KEY but no referral secret cannot read it:
    b = _capture_host(make_host)
    other = b.app.test_client()
    other.set_cookie("havn_referral", value)
    assert other.get("/login").json is None


def test_last_touch_replaces_and_first_touch_keeps(make_host: Any) -> None:
    last = _capture_host(make_host)
    client = last.app.test_client()
    client.get("/login?ref=HAVN-AA-001&vc=ONE")
    last.clock.now += DAY
    assert client.get("/login?ref=HAVN-BB-002").json == {"code": "HAVN-BB-002", "voucher": None,
                                                        "captured_at": int(START + DAY)}

    first = _capture_host(make_host, {"HAVN_REFERRAL_POLICY": "first"})
    client = first.app.test_client()
    client.get("/login?ref=HAVN-AA-001&vc=ONE")
    first.clock.now += DAY
    response = client.get("/login?ref=HAVN-BB-002")
    assert response.json == {"code": "HAVN-AA-001", "voucher": "ONE", "captured_at": int(START)}
    assert _set_cookie_headers(response) == []


def test_the_window_expires_and_an_expired_cookie_is_dropped(make_host: Any) -> None:
    host = _capture_host(make_host, {"HAVN_REFERRAL_MAX_AGE": 7 * DAY})
    client = host.app.test_client()
    client.get("/login?ref=HAVN-MJ-001")
    host.clock.now = START + 7 * DAY
    assert client.get("/login").json["code"] == "HAVN-MJ-001"  # still inside the window
    host.clock.now = START + 7 * DAY + 1
    response = client.get("/login")
    assert response.status_code == 200 and response.json is None
    assert _cookie(client) is None  # deleted by the response


def test_first_touch_lets_a_new_link_win_once_the_old_one_expired(make_host: Any) -> None:
    host = _capture_host(make_host, {"HAVN_REFERRAL_POLICY": "first", "HAVN_REFERRAL_MAX_AGE": DAY})
    client = host.app.test_client()
    client.get("/login?ref=HAVN-AA-001")
    host.clock.now += 2 * DAY
    assert client.get("/login?ref=HAVN-BB-002").json["code"] == "HAVN-BB-002"


@pytest.mark.parametrize("value", ["garbage", "", "a.b.c", "eyJyIjoiSEFWTi1NSi0wMDEifQ.AAAAAA.forged"])
def test_a_tampered_or_malformed_cookie_is_ignored_never_an_error(make_host: Any, value: str) -> None:
    host = _capture_host(make_host)
    client = host.app.test_client()
    client.set_cookie("havn_referral", value)
    response = client.get("/login")
    assert response.status_code == 200 and response.json is None


def test_a_cookie_whose_payload_was_changed_is_ignored(make_host: Any) -> None:
    host = _capture_host(make_host)
    client = host.app.test_client()
    client.get("/login?ref=HAVN-MJ-001")
    payload, rest = _cookie(client).value.split(".", 1)
    import base64
    import json

    forged = base64.urlsafe_b64encode(json.dumps({"r": "HAVN-XX-999", "v": None}).encode()).decode().rstrip("=")
    assert forged != payload
    client.set_cookie("havn_referral", forged + "." + rest)
    assert client.get("/login").json is None


@pytest.mark.parametrize("query", [
    "ref=AB",                       # too short
    "ref=" + "A" * 51,              # too long
    "ref=HAVN MJ 001",              # spaces
    "ref=<script>",                 # markup
    "ref=HAVN-MJ-001&ref=HAVN-X-1",  # given twice
    "vc=HAVN-MJ-SE-ABC123",         # a voucher without a code
    "ref=",
])
def test_bad_formats_are_not_captured(make_host: Any, query: str) -> None:
    host = _capture_host(make_host)
    client = host.app.test_client()
    response = client.get("/login?" + query)
    assert response.status_code == 200 and response.json is None
    assert _set_cookie_headers(response) == []


def test_a_bad_voucher_is_dropped_and_the_code_kept(make_host: Any) -> None:
    host = _capture_host(make_host)
    response = host.app.test_client().get("/login?ref=HAVN-MJ-001&vc=%3Cb%3E")
    assert response.json == {"code": "HAVN-MJ-001", "voucher": None, "captured_at": int(START)}


def test_a_post_is_never_captured(make_host: Any) -> None:
    host = _capture_host(make_host)
    response = host.app.test_client().post("/login?ref=HAVN-MJ-001")
    assert response.json is None and _set_cookie_headers(response) == []


def test_the_parameter_and_cookie_names_are_configurable(make_host: Any) -> None:
    host = _capture_host(make_host, {"HAVN_REFERRAL_CODE_PARAM": "via", "HAVN_REFERRAL_VOUCHER_PARAM": "promo",
                                     "HAVN_REFERRAL_COOKIE": "shop_ref"})
    client = host.app.test_client()
    assert client.get("/login?ref=HAVN-AA-001").json is None
    assert client.get("/login?via=HAVN-MJ-001&promo=DISC50").json["voucher"] == "DISC50"
    assert _cookie(client, "shop_ref") is not None and _cookie(client) is None


def test_the_capture_never_redirects(make_host: Any) -> None:
    host = _capture_host(make_host)
    response = host.app.test_client().get("/login?ref=HAVN-MJ-001&next=https://evil.example&redirect=//evil")
    assert response.status_code == 200 and "Location" not in response.headers


@pytest.mark.parametrize("key, value", [("HAVN_REFERRAL_POLICY", "middle"), ("HAVN_REFERRAL_MAX_AGE", 0),
                                        ("HAVN_REFERRAL_CODE_PARAM", "r e f"), ("HAVN_REFERRAL_COOKIE", "a;b")])
def test_bad_settings_are_refused_at_init(make_host: Any, key: str, value: Any) -> None:
    with pytest.raises(HAVNConfigError, match=key):
        make_host({"SECRET_KEY": "k", key: value})


def test_the_signing_key_is_never_shown_in_app_config(make_host: Any) -> None:
    host = _capture_host(make_host, {"HAVN_REFERRAL_SECRET": "do-not-show"})
    assert [k for k, v in host.app.config.items() if v == "do-not-show"] == ["HAVN_REFERRAL_SECRET"]
    assert host.app.config["HAVN_REFERRAL_POLICY"] == "last"  # the other resolved settings are shown
    assert "do-not-show" not in repr(host.app.extensions["havn"].config)

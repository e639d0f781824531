"""Sandbox backend: POST /login and single-use token redemption."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from itsdangerous import URLSafeTimedSerializer

from flask_havn.sandbox.backend import LOGIN_SALT, SandboxBackend
from flask_havn.sandbox.errors import SandboxError
from flask_havn.sandbox.settings import SandboxSettings

FRONTEND = "https://app.havn.example"


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(clock: Clock) -> Iterator[SandboxBackend]:
    b = SandboxBackend(SandboxSettings(seed=5, login_token_ttl=300), clock=clock)
    b.seed({"associates": [{"name": "John Doe", "email": "John@Example.com"}],
            "users": [{"email": "off@example.com", "name": "Off Line", "active": False}]})
    yield b
    b.close()


def error_of(call: Any) -> SandboxError:
    with pytest.raises(SandboxError) as info:
        call()
    return info.value


def test_login_answers_havn_shape(backend: SandboxBackend) -> None:
    out = backend.login({"email": "  JOHN@example.com "}, frontend_url=FRONTEND + "/")
    assert out.status == 200
    assert out.body["success"] is True
    assert out.body["message"] == "Login successful - redirect user to provided URL"
    data = out.body["data"]
    assert data["expires_in"] == 300
    url = urlsplit(data["redirect_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == FRONTEND + "/login"
    assert parse_qs(url.query)["token"] == [data["token"]]


def test_token_is_single_use(backend: SandboxBackend) -> None:
    token = backend.login({"email": "john@example.com"}, frontend_url=FRONTEND).body["data"]["token"]
    first = backend.redeem_login(token)
    assert first.status == 200 and first.body["user"]["email"] == "John@Example.com"
    err = error_of(lambda: backend.redeem_login(token))
    assert err.status == 400 and "already used" in err.message
    assert backend.dump()["login_tokens"][0]["used"] is True


def test_two_logins_give_two_independent_tokens(backend: SandboxBackend) -> None:
    a = backend.login({"email": "john@example.com"}, frontend_url=FRONTEND).body["data"]["token"]
    b = backend.login({"email": "john@example.com"}, frontend_url=FRONTEND).body["data"]["token"]
    assert a != b
    assert backend.redeem_login(b).status == 200
    assert backend.redeem_login(a).status == 200


def test_expired_token_is_400(backend: SandboxBackend, clock: Clock) -> None:
    token = backend.login({"email": "john@example.com"}, frontend_url=FRONTEND).body["data"]["token"]
    clock.now += timedelta(seconds=301)
    err = error_of(lambda: backend.redeem_login(token))
    assert err.status == 400 and "expired" in err.message


def test_token_within_ttl_works(backend: SandboxBackend, clock: Clock) -> None:
    token = backend.login({"email": "john@example.com"}, frontend_url=FRONTEND).body["data"]["token"]
    clock.now += timedelta(seconds=299)
    assert backend.redeem_login(token).status == 200


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: "x" + t,
    lambda t: "not-a-token",
    lambda t: URLSafeTimedSerializer("other-secret", salt=LOGIN_SALT).dumps({"uid": "usr_1", "jti": "x"}),
    lambda t: URLSafeTimedSerializer("sandbox-webhook-secret", salt=LOGIN_SALT).dumps({"uid": "u", "jti": "forged"}),
    lambda t: URLSafeTimedSerializer("sandbox-webhook-secret", salt=LOGIN_SALT).dumps(["list"]),
])
def test_forged_tokens_are_400(backend: SandboxBackend, mangle: Any) -> None:
    token = backend.login({"email": "john@example.com"}, frontend_url=FRONTEND).body["data"]["token"]
    err = error_of(lambda: backend.redeem_login(mangle(token)))
    assert err.status == 400 and err.field == "token"
    assert backend.dump()["login_tokens"][0]["used"] is False


def test_empty_token_is_400(backend: SandboxBackend) -> None:
    assert error_of(lambda: backend.redeem_login("")).status == 400


@pytest.mark.parametrize("email, status", [
    ("no-at-sign", 400), ("", 400), (None, 400), (42, 400), ("ghost@example.com", 404), ("off@example.com", 400),
])
def test_login_refusals(backend: SandboxBackend, email: Any, status: int) -> None:
    err = error_of(lambda: backend.login({"email": email}, frontend_url=FRONTEND))
    assert (err.status, err.field) == (status, "email")
    assert backend.dump()["counts"]["login_tokens"] == 0


def test_test_mode_login_stores_no_token(backend: SandboxBackend) -> None:
    out = backend.login({"email": "john@example.com"}, frontend_url=FRONTEND, test_mode=True)
    assert out.status == 200 and out.body["data"]["token"]
    assert backend.dump()["counts"]["login_tokens"] == 0
    assert error_of(lambda: backend.redeem_login(out.body["data"]["token"])).status == 400

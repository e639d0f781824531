"""Sandbox settings (HAVN_SANDBOX_* keys) and the sandbox's error answers."""
from __future__ import annotations

import os
from decimal import Decimal
from typing import Any, Dict

import pytest

from flask_havn.config import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET
from flask_havn.currency import SUPPORTED_CURRENCIES
from flask_havn.errors import HAVNConfigError, HAVNValidationError
from flask_havn.sandbox import errors
from flask_havn.sandbox.state import get_state
from flask_havn.sandbox.settings import (
    DEFAULT_COMMISSION_LEVELS,
    DEFAULT_EXCHANGE_RATES,
    DEFAULT_RATE_LIMITS,
    SandboxSettings,
)


def test_defaults() -> None:
    s = SandboxSettings()
    assert (s.api_key, s.webhook_secret, s.database_uri) == (SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET, "sqlite://")
    assert set(DEFAULT_EXCHANGE_RATES) == set(SUPPORTED_CURRENCIES) == set(s.exchange_rates)
    assert s.exchange_rates["USD"] == Decimal(1) and s.exchange_rates["IDR"] == Decimal("0.0000633")
    assert all(isinstance(r, Decimal) and r > 0 for r in s.exchange_rates.values())
    assert s.commission_levels == tuple(Decimal(p) for p in DEFAULT_COMMISSION_LEVELS) == tuple(
        Decimal(p) for p in ("5", "3", "2", "1", "1"))
    assert dict(s.rate_limits) == DEFAULT_RATE_LIMITS and s.rate_limits["login"] == 20
    assert set(DEFAULT_RATE_LIMITS) == {"transaction", "user_sync", "voucher_validate", "vouchers", "login"}
    assert (s.bulk_max_size, s.seed, s.delivery_schedule_factor, s.faults, s.login_token_ttl, s.webhook_url) == (
        50, None, 1.0, None, 300, None)


def test_repr_hides_secrets() -> None:
    s = SandboxSettings.from_mapping({"HAVN_API_KEY": "k-123456", "HAVN_WEBHOOK_SECRET": "s-654321"})
    assert (s.api_key, s.webhook_secret) == ("k-123456", "s-654321")
    assert "k-123456" not in repr(s) and "s-654321" not in repr(s)


def test_from_mapping_reads_every_key() -> None:
    s = SandboxSettings.from_mapping({
        "HAVN_SANDBOX_DATABASE_URI": "sqlite:////tmp/x.db",
        "HAVN_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:5000/havn/webhooks",
        "HAVN_SANDBOX_COMMISSION_LEVELS": "10, 5,2.5",
        "HAVN_SANDBOX_EXCHANGE_RATES": {"idr": "0.00007", "EUR": Decimal("1.1")},
        "HAVN_SANDBOX_RATE_LIMITS": {"login": 2},
        "HAVN_SANDBOX_BULK_MAX_SIZE": "10",
        "HAVN_SANDBOX_SEED": 99,
        "HAVN_SANDBOX_DELIVERY_SCHEDULE_FACTOR": "0.001",
        "HAVN_SANDBOX_FAULTS": {"status": 503},
        "HAVN_SANDBOX_LOGIN_TOKEN_TTL": 60,
        "UNRELATED": object(),
    })
    assert s.database_uri == "sqlite:////tmp/x.db"
    assert s.webhook_url == "http://127.0.0.1:5000/havn/webhooks"
    assert s.commission_levels == (Decimal("10"), Decimal("5"), Decimal("2.5"))
    assert s.exchange_rates["IDR"] == Decimal("0.00007") and s.exchange_rates["EUR"] == Decimal("1.1")
    assert s.exchange_rates["GBP"] == Decimal(DEFAULT_EXCHANGE_RATES["GBP"])  # merged over defaults
    assert s.rate_limits["login"] == 2 and s.rate_limits["transaction"] == DEFAULT_RATE_LIMITS["transaction"]
    assert (s.bulk_max_size, s.seed, s.delivery_schedule_factor, s.login_token_ttl) == (10, 99, 0.001, 60)
    assert dict(s.faults or {}) == {"status": 503}


def test_every_setting_reads_its_string_form_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = {
        "HAVN_SANDBOX_DATABASE_URI": "sqlite://",
        "HAVN_SANDBOX_COMMISSION_LEVELS": "10,5",
        "HAVN_SANDBOX_EXCHANGE_RATES": "IDR=0.00007, eur=1.1",
        "HAVN_SANDBOX_RATE_LIMITS": '{"login": 2, "transaction": 7}',
        "HAVN_SANDBOX_BULK_MAX_SIZE": "10",
        "HAVN_SANDBOX_SEED": "99",
        "HAVN_SANDBOX_DELIVERY_SCHEDULE_FACTOR": "0.001",
        "HAVN_SANDBOX_FAULTS": '{"seed": 3, "rates": {"503": 0.25}, "burst_429": 2}',
        "HAVN_SANDBOX_LOGIN_TOKEN_TTL": "60",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    s = SandboxSettings.from_mapping(os.environ)
    assert s.commission_levels == (Decimal(10), Decimal(5))
    assert (s.exchange_rates["IDR"], s.exchange_rates["EUR"]) == (Decimal("0.00007"), Decimal("1.1"))
    assert s.exchange_rates["GBP"] == Decimal(DEFAULT_EXCHANGE_RATES["GBP"])
    assert dict(s.rate_limits) == {**DEFAULT_RATE_LIMITS, "login": 2, "transaction": 7}
    assert (s.bulk_max_size, s.seed, s.delivery_schedule_factor, s.login_token_ttl) == (10, 99, 0.001, 60)
    assert dict(s.faults or {}) == {"seed": 3, "rates": {"503": 0.25}, "burst_429": 2}
    # JSON rates stay exact (no float on the way), like HAVN_EXCHANGE_RATES.
    monkeypatch.setenv("HAVN_SANDBOX_EXCHANGE_RATES", '{"IDR": 0.0000633}')
    assert SandboxSettings.from_mapping(os.environ).exchange_rates["IDR"] == Decimal("0.0000633")


def test_the_embedded_sandbox_takes_its_settings_from_the_environment(
        make_host: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAVN_SANDBOX_EXCHANGE_RATES", "IDR=0.00007")
    monkeypatch.setenv("HAVN_SANDBOX_RATE_LIMITS", '{"login": 3}')
    monkeypatch.setenv("HAVN_SANDBOX_FAULTS", '{"burst_429": 1}')
    host = make_host({"HAVN_SANDBOX_WEBHOOK_URL": None})
    state = get_state(host.app.extensions["havn"].sandbox_app)
    assert state.backend.rates["IDR"] == Decimal("0.00007")
    assert state.limiter.limit_for("login") == 3
    assert state.faults.stats()["burst_429_remaining"] == 1


def test_none_and_blank_credentials_keep_defaults() -> None:
    s = SandboxSettings.from_mapping({"HAVN_API_KEY": None, "HAVN_WEBHOOK_SECRET": "  ", "HAVN_SANDBOX_SEED": None})
    assert (s.api_key, s.webhook_secret, s.seed) == (SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET, None)
    assert SandboxSettings.from_mapping(None) == SandboxSettings()


def test_levels_accept_a_list_of_numbers_and_strings() -> None:
    s = SandboxSettings.from_mapping({"HAVN_SANDBOX_COMMISSION_LEVELS": [5, "3", 2.5]})
    assert s.commission_levels == (Decimal(5), Decimal(3), Decimal("2.5"))


@pytest.mark.parametrize("key, value, words", [
    ("HAVN_SANDBOX_EXCHANGE_RATES", {"IDR": 0.00007}, "not a float"),
    ("HAVN_SANDBOX_EXCHANGE_RATES", {"XYZ": "1"}, "not a currency"),
    ("HAVN_SANDBOX_EXCHANGE_RATES", {"USD": "2"}, "always 1"),
    ("HAVN_SANDBOX_EXCHANGE_RATES", {"IDR": "-1"}, "positive"),
    ("HAVN_SANDBOX_EXCHANGE_RATES", "IDR", "is not CODE=RATE"),
    ("HAVN_SANDBOX_EXCHANGE_RATES", "{IDR: 1}", "JSON object"),
    ("HAVN_SANDBOX_EXCHANGE_RATES", ["IDR"], "dict"),
    ("HAVN_SANDBOX_COMMISSION_LEVELS", "50,40,20", "more than 100"),
    ("HAVN_SANDBOX_COMMISSION_LEVELS", "5,-1", "percentage"),
    ("HAVN_SANDBOX_COMMISSION_LEVELS", "5,abc", "percentage"),
    ("HAVN_SANDBOX_COMMISSION_LEVELS", [], "between 1 and"),
    ("HAVN_SANDBOX_COMMISSION_LEVELS", {"a": 1}, "list"),
    ("HAVN_SANDBOX_RATE_LIMITS", {"refunds": 5}, "not one of"),
    ("HAVN_SANDBOX_RATE_LIMITS", {"login": 0}, "at least 1"),
    ("HAVN_SANDBOX_BULK_MAX_SIZE", 0, "at least 1"),
    ("HAVN_SANDBOX_BULK_MAX_SIZE", 2.5, "whole number"),
    ("HAVN_SANDBOX_SEED", "abc", "invalid"),
    ("HAVN_SANDBOX_DELIVERY_SCHEDULE_FACTOR", -1, "0 or more"),
    ("HAVN_SANDBOX_DELIVERY_SCHEDULE_FACTOR", "inf", "finite"),
    ("HAVN_SANDBOX_FAULTS", ["x"], "dict"),
    ("HAVN_SANDBOX_FAULTS", "rates=500", "JSON object"),
    ("HAVN_SANDBOX_FAULTS", "[1]", "dict"),
    ("HAVN_SANDBOX_RATE_LIMITS", "login=5", "JSON object"),
    ("HAVN_SANDBOX_RATE_LIMITS", '{"login": 2.5}', "whole number"),
    ("HAVN_SANDBOX_LOGIN_TOKEN_TTL", -5, "at least 1"),
    ("HAVN_SANDBOX_DATABASE_URI", "", "SQLAlchemy URL"),
])
def test_bad_values_name_the_key(key: str, value: Any, words: str) -> None:
    with pytest.raises(HAVNConfigError) as info:
        SandboxSettings.from_mapping({key: value})
    assert key in info.value.message and words in info.value.message


def test_bad_secret_is_not_echoed() -> None:
    with pytest.raises(HAVNConfigError) as info:
        SandboxSettings.from_mapping({"HAVN_API_KEY": 123456789})
    assert "123456789" not in info.value.message and "<hidden>" in info.value.message


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(HAVNConfigError) as info:
        SandboxSettings(bulk_max_size=0)
    assert "bulk_max_size" in info.value.message
    s = SandboxSettings(commission_levels=("10",), exchange_rates={"IDR": "0.0001"})  # type: ignore[arg-type]
    assert s.commission_levels == (Decimal(10),) and s.exchange_rates["IDR"] == Decimal("0.0001")
    assert s.exchange_rates["EUR"] == Decimal("1.08")


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make, status, kind", [
    (errors.bad_request, 400, "ValidationError"), (errors.not_found, 404, "NotFound"),
    (errors.conflict, 409, "Conflict"), (errors.unprocessable, 422, "UnprocessableEntity"),
])
def test_error_helpers(make: Any, status: int, kind: str) -> None:
    err = make("fix it", field="amount")
    assert (err.status, err.error, err.message, err.field) == (status, kind, "fix it", "amount")
    assert err.body() == {"error": kind, "message": "fix it", "field": "amount"}
    assert make("no field").body() == {"error": kind, "message": "no field"}


def test_auth_and_rate_limit_errors() -> None:
    auth, limited = errors.unauthorized(), errors.rate_limited()
    assert (auth.status, auth.error) == (401, "AuthenticationError") and "HAVN_API_KEY" in auth.message
    assert (limited.status, limited.error) == (429, "RateLimitExceeded") and "X-RateLimit-Reset" in limited.message


def test_from_validation_keeps_the_field() -> None:
    err = errors.from_validation(HAVNValidationError("amount", "must be greater than 0"))
    body: Dict[str, str] = err.body()
    assert body == {"error": "ValidationError", "message": "amount: must be greater than 0", "field": "amount"}
    assert err.status == 400 and isinstance(err, Exception)

"""HAVN_* keys: precedence, parsing, defaults, credential checks."""
from __future__ import annotations

from decimal import Decimal

import pytest

from flask_havn.config import HAVNConfigWarning, DEFAULTS, HAVNConfig
from flask_havn.errors import HAVNConfigError


def test_defaults_match_the_documented_table():
    assert DEFAULTS == {
        "HAVN_API_KEY": None, "HAVN_WEBHOOK_SECRET": None, "HAVN_BASE_URL": "https://api.havn.com",
        "HAVN_TIMEOUT": 30.0, "HAVN_MAX_RETRIES": 3, "HAVN_BACKOFF_FACTOR": 0.5, "HAVN_TEST_MODE": False,
        "HAVN_PAYMENT_GATEWAY": "MANUAL", "HAVN_BULK_MAX_SIZE": 50, "HAVN_URL_PREFIX": "/havn",
        "HAVN_SANDBOX": False, "HAVN_DELIVERY": "inline", "HAVN_DELIVERY_MAX_ATTEMPTS": 8,
        "HAVN_DELIVERY_BACKOFF": 30.0, "HAVN_DELIVERY_MAX_BACKOFF": 21600.0, "HAVN_DELIVERY_LEASE": None,
        "HAVN_QUEUE_NAME": "havn", "HAVN_RQ_URL": "redis://localhost:6379/0", "HAVN_QUEUE_SWEEP_GRACE": 300.0,
        "HAVN_WEBHOOK_PATH": "/webhooks",
        "HAVN_WEBHOOK_SECRETS": (), "HAVN_WEBHOOK_TOLERANCE": 300, "HAVN_WEBHOOK_MAX_BYTES": 262144,
        "HAVN_CURRENCY_CONVERSION": "server", "HAVN_EXCHANGE_RATES": {},
        "HAVN_CAPTURE_REFERRALS": False, "HAVN_REFERRAL_MAX_AGE": 2592000, "HAVN_REFERRAL_POLICY": "last",
        "HAVN_REFERRAL_CODE_PARAM": "ref", "HAVN_REFERRAL_VOUCHER_PARAM": "vc", "HAVN_REFERRAL_COOKIE": "havn_referral",
        "HAVN_REFERRAL_SECRET": None,
    }


def test_app_config_beats_options_beats_environment():
    config = HAVNConfig.from_app_config(
        {"HAVN_TIMEOUT": 5}, {"timeout": 7, "max_retries": 9, "test_mode": True},
        environ={"HAVN_TIMEOUT": "6", "HAVN_MAX_RETRIES": "1", "HAVN_TEST_MODE": "0", "HAVN_API_KEY": "from-env"},
    )
    assert (config.timeout, config.max_retries, config.test_mode, config.api_key) == (5.0, 9, True, "from-env")


def test_an_explicit_option_wins_over_a_stray_environment_variable(make_host, monkeypatch):
    monkeypatch.setenv("HAVN_TEST_MODE", "0")
    host = make_host(test_mode=True)
    with host.app.app_context():
        assert host.havn.config.test_mode is True
        assert host.havn.client.transactions  # the client is built with that config
    assert host.app.extensions["havn"].transport.test_mode is True


@pytest.mark.parametrize("key, value, says", [
    ("HAVN_MAX_RETRIES", 2.5, "whole number"), ("HAVN_MAX_RETRIES", "2.5", "whole number"),
    ("HAVN_MAX_RETRIES", True, "not a boolean"), ("HAVN_MAX_RETRIES", 11, "from 0 to 10"),
    ("HAVN_BULK_MAX_SIZE", 100, "from 1 to 50"), ("HAVN_DELIVERY_MAX_ATTEMPTS", 0, "from 1 to 1000"),
    ("HAVN_TIMEOUT", -1, "more than 0"), ("HAVN_WEBHOOK_TOLERANCE", 10 ** 9, "from 1 to 86400"),
    ("HAVN_DELIVERY_BACKOFF", float("nan"), "from 0"), ("HAVN_DELIVERY", "celery-ish", "choose one of"),
])
def test_every_type_and_range_is_checked_at_init_app(make_host, key, value, says):
    with pytest.raises(HAVNConfigError) as info:
        make_host({key: value})
    assert key in info.value.message and says in info.value.message


def test_an_unknown_havn_key_in_app_config_warns(make_host):
    with pytest.warns(HAVNConfigWarning, match="HAVN_MAX_RETRYS"):
        make_host({"HAVN_MAX_RETRYS": 5})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_host({"HAVN_SANDBOX_SEED": 7, "HAVN_MAX_RETRIES": 2})  # the sandbox's own keys are not ours to judge


def test_environment_strings_are_parsed():
    config = HAVNConfig.from_app_config({}, environ={
        "HAVN_TEST_MODE": "true", "HAVN_SANDBOX": "0", "HAVN_BASE_URL": "http://x/", "HAVN_URL_PREFIX": "api/havn/",
        "HAVN_PAYMENT_GATEWAY": " stripe ",
    })
    assert (config.test_mode, config.sandbox, config.base_url) == (True, False, "http://x")
    assert (config.url_prefix, config.payment_gateway) == ("/api/havn", "STRIPE")


@pytest.mark.parametrize("key, value", [("HAVN_TIMEOUT", "0"), ("HAVN_MAX_RETRIES", "-1"), ("HAVN_TEST_MODE", "maybe"),
                                        ("HAVN_BULK_MAX_SIZE", "0"), ("HAVN_BACKOFF_FACTOR", "fast")])
def test_invalid_values_name_the_key(key, value):
    with pytest.raises(HAVNConfigError, match=key):
        HAVNConfig.from_app_config({key: value}, environ={})


def test_unknown_option_is_refused():
    with pytest.raises(HAVNConfigError, match="api_kee"):
        HAVNConfig.from_app_config({}, {"api_kee": "x"}, environ={})


def test_missing_credentials_name_the_key_unless_sandbox():
    with pytest.raises(HAVNConfigError, match="HAVN_API_KEY"):
        HAVNConfig.from_app_config({}, environ={}).require_credentials()
    with pytest.raises(HAVNConfigError, match="HAVN_WEBHOOK_SECRET"):
        HAVNConfig.from_app_config({"HAVN_API_KEY": "k"}, environ={}).require_credentials()
    HAVNConfig.from_app_config({"HAVN_SANDBOX": True}, environ={}).require_credentials()


def test_secrets_never_in_repr_or_errors():
    config = HAVNConfig.from_app_config({"HAVN_API_KEY": "key-123", "HAVN_WEBHOOK_SECRET": "sec-456"}, environ={})
    assert "key-123" not in repr(config) and "sec-456" not in repr(config)


def test_rotation_secrets_and_choices():
    config = HAVNConfig.from_app_config({"HAVN_WEBHOOK_SECRET": "new", "HAVN_WEBHOOK_SECRETS": "old, new,older",
                                         "HAVN_DELIVERY": "Worker"}, environ={})
    assert config.inbound_secrets == ("new", "old", "older")
    assert config.delivery == "worker"
    assert "old" not in repr(config)
    with pytest.raises(HAVNConfigError, match="HAVN_DELIVERY"):
        HAVNConfig.from_app_config({"HAVN_DELIVERY": "sidekiq"}, environ={})
    assert HAVNConfig.from_app_config({"HAVN_DELIVERY": " RQ "}, environ={}).delivery == "rq"


def test_currency_conversion_mode_and_rates():
    config = HAVNConfig.from_app_config({"HAVN_CURRENCY_CONVERSION": " Client ",
                                         "HAVN_EXCHANGE_RATES": {"idr": "0.0000633", "KWD": Decimal("3.25")}},
                                        environ={})
    assert config.currency_conversion == "client"
    assert dict(config.exchange_rates) == {"IDR": Decimal("0.0000633"), "KWD": Decimal("3.25")}
    with pytest.raises(TypeError):
        config.exchange_rates["EUR"] = Decimal("1.08")  # read-only once resolved
    with pytest.raises(HAVNConfigError, match="HAVN_CURRENCY_CONVERSION"):
        HAVNConfig.from_app_config({"HAVN_CURRENCY_CONVERSION": "both"}, environ={})


@pytest.mark.parametrize("text", ['{"IDR": "0.0000633", "EUR": 1.08}', "IDR=0.0000633, EUR=1.08", "idr=0.0000633;EUR=1.08"])
def test_exchange_rates_from_the_environment_are_exact(text):
    config = HAVNConfig.from_app_config({}, environ={"HAVN_EXCHANGE_RATES": text})
    assert dict(config.exchange_rates) == {"IDR": Decimal("0.0000633"), "EUR": Decimal("1.08")}


@pytest.mark.parametrize("value, says", [
    ({"IDR": 0.0000633}, "not a float"),           # floats are inexact: refused with the fix
    ({"XYZ": "1"}, "'XYZ' is not a currency HAVN accepts; use one of AUD"),
    ({"USD": "2"}, "USD rate is always 1"),
    ({"EUR": "-1"}, "positive"),
    ({"EUR": "lots"}, "not a decimal number"),
    ("IDR", "is not CODE=RATE"),
    ("{not json", "JSON object"),
    (["IDR", "1"], "give a dict"),
])
def test_bad_exchange_rates_name_the_key_and_the_fix(value, says):
    with pytest.raises(HAVNConfigError) as info:
        HAVNConfig.from_app_config({"HAVN_EXCHANGE_RATES": value}, environ={})
    assert "HAVN_EXCHANGE_RATES" in str(info.value) and says in str(info.value)

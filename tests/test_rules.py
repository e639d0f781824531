"""HAVN's payload rules, shared by client and sandbox."""
from __future__ import annotations

import pytest

from flask_havn import rules
from flask_havn.errors import HAVNValidationError


@pytest.mark.parametrize("value", [0, -1, 1_000_000_001, 10.0, "100", None, True])
def test_bad_amounts(value):
    with pytest.raises(HAVNValidationError) as info:
        rules.check_amount(value)
    assert info.value.field == "amount"


def test_amount_bounds_inclusive():
    assert rules.check_amount(1) == 1
    assert rules.check_amount(rules.MAX_AMOUNT) == rules.MAX_AMOUNT


@pytest.mark.parametrize("value", ["a@b.co", "first.last+tag@sub.example.com", "A@X.IO"])
def test_good_emails_unchanged(value):
    assert rules.check_email(value) == value


@pytest.mark.parametrize("value", ["", "a@b", "a b@c.com", "@x.com", "a@x.c", None, 5, "a@x.com "])
def test_bad_emails(value):
    with pytest.raises(HAVNValidationError, match="customer_email"):
        rules.check_email(value, "customer_email")


def test_currency_normalised_and_whitelisted():
    assert rules.check_currency(" idr ") == "IDR"
    assert rules.check_currency("kwd") == "KWD"  # HAVN's minor-unit table's currencies are accepted too
    for bad in ("US", "XXX", "XAU", "", 840, None):
        with pytest.raises(HAVNValidationError) as info:
            rules.check_currency(bad)
        assert info.value.field == "currency"
    with pytest.raises(HAVNValidationError) as info:
        rules.check_currency("xau")
    assert "'XAU' is not a currency HAVN accepts" in info.value.message
    assert "KWD" in info.value.message and "USD" in info.value.message  # lists what is accepted


def test_custom_fields_rules():
    assert rules.check_custom_fields({"a": "1", "b": 2, "c": True}) == {"a": "1", "b": 2, "c": True}
    for bad in ({"a": 1, "b": 2, "c": 3, "d": 4}, {1: "x"}, {"a": None}, {"a": [1]}, {"a": {"b": 1}}, ["a"],
                {"a": float("nan")}, {"a": float("inf")}, {"a": -float("inf")}):
        with pytest.raises(HAVNValidationError):
            rules.check_custom_fields(bad)


def test_codes():
    assert rules.check_code("  havn-mj-001 ", upper=True) == "HAVN-MJ-001"
    assert rules.check_code("abc") == "abc"
    assert rules.optional_code(None, "upline_code") is None
    for bad in ("ab", "x" * 51, "   ", "", None, 123):
        with pytest.raises(HAVNValidationError) as info:
            rules.check_code(bad, "upline_code")
        assert info.value.field == "upline_code"


def test_text_bool_country():
    assert rules.check_text(" x ", "name", max_length=5, strip=True) == "x"
    with pytest.raises(HAVNValidationError):
        rules.check_text("x" * 6, "name", max_length=5)
    assert rules.check_bool(False, "is_owner") is False
    with pytest.raises(HAVNValidationError):
        rules.check_bool(1, "is_owner")
    assert rules.check_country_code("ID") == "ID"
    for bad in ("id", "IDN", "I1", None):
        with pytest.raises(HAVNValidationError):
            rules.check_country_code(bad)


def test_error_message_names_field_and_fix():
    with pytest.raises(HAVNValidationError) as info:
        rules.check_custom_fields({"a": 1, "b": 2, "c": 3, "d": 4})
    assert info.value.message.startswith("custom_fields:")
    assert "at most 3" in info.value.message and info.value.status_code == 400

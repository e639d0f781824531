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


@pytest.mark.parametrize("text,depth", [
    ("1", 0), ("[]", 1), ('{"a": [1, {"b": []}]}', 4),
    ('["]]]]", "[[[[", "\\"[", "\\\\"]', 1),  # brackets inside strings, escaped quotes and backslashes
    ('"unterminated [[[[', 0), ("[" * 100_000, 100_000),
])
def test_json_depth_counts_nesting_outside_strings(text, depth):
    assert rules.json_depth(text) == depth


def test_json_depth_is_linear_on_quotes_and_backslashes():
    import time

    hostile = '"' + '\\"' * 200_000  # a naive string pattern would rescan this from every quote
    started = time.perf_counter()
    assert rules.json_depth(hostile) == 0
    assert time.perf_counter() - started < 5


def test_load_json_refuses_what_cannot_be_parsed_or_stored():
    assert rules.load_json(b'{"a": [[1]]}') == {"a": [[1]]}
    assert rules.load_json("[" * rules.MAX_JSON_DEPTH + "]" * rules.MAX_JSON_DEPTH) is not None
    for raw, reason in [("[" * 33 + "]" * 33, "33 levels deep; at most 32"), (b"\xff", "UTF-8"),
                        (b'{"a": NaN}', "not valid JSON"), (b"{", "not valid JSON"),
                        (b"1" * 5000, "not valid JSON"), ("[" * 10 ** 6, "levels deep")]:
        with pytest.raises(HAVNValidationError, match=reason) as info:
            rules.load_json(raw, "body")
        assert info.value.field == "body"


@pytest.mark.parametrize("value", ["nul\x00", "\ud800", "x\udfffy"])
def test_unstorable_text_is_refused_everywhere_text_is_checked(value):
    for check in (lambda: rules.check_storable(value, "f"), lambda: rules.check_text(value, "f", max_length=50),
                  lambda: rules.optional_text(value, "f", 50), lambda: rules.check_code(value + "abc", "f"),
                  lambda: rules.check_recorded_custom_fields({"k": value}),
                  lambda: rules.check_recorded_custom_fields({value: 1})):
        with pytest.raises(HAVNValidationError, match="cannot be stored"):
            check()
    assert rules.check_storable("emoji \U0001F600 and é", "f") == "emoji \U0001F600 and é"  # pairs are fine


def test_emails_are_bounded_by_rfc_and_by_the_column():
    long = "a" * 242 + "@example.com"
    assert rules.check_email(long) == long  # 254 characters
    with pytest.raises(HAVNValidationError, match="at most 254"):
        rules.check_email("a" + long)
    with pytest.raises(HAVNValidationError, match="at most 100"):
        rules.check_email(long, max_length=100)


def test_recorded_custom_fields_bounds_inclusive():
    biggest_int = {"n": rules.MAX_INT64, "m": rules.MIN_INT64, "k" * rules.MAX_CUSTOM_FIELD_KEY: "v" * 500}
    assert rules.check_recorded_custom_fields(biggest_int) == biggest_int
    for bad, field in [({"n": rules.MAX_INT64 + 1}, "custom_fields.n"), ({"n": rules.MIN_INT64 - 1}, "custom_fields.n"),
                       ({"t": "v" * 501}, "custom_fields.t"), ({"k" * 41: 1}, "custom_fields." + "k" * 40),
                       ({"": 1}, "custom_fields."),
                       ({"a": "é" * 500, "b": "é" * 500, "c": "é" * 50}, "custom_fields"),
                       ({"a": 1, "b": 2, "c": 3, "d": 4}, "custom_fields")]:
        with pytest.raises(HAVNValidationError) as info:
            rules.check_recorded_custom_fields(bad)
        assert info.value.field == field
    assert rules.check_custom_fields({"n": 2 ** 64}) == {"n": 2 ** 64}  # the client's own rule stays HAVN's


def test_check_unicode_refuses_only_lone_surrogates():
    assert rules.check_unicode("nul\x00 and \U0001F600", "f") == "nul\x00 and \U0001F600"
    for bad in ("\ud800", "x\udc00"):
        with pytest.raises(HAVNValidationError, match="unpaired UTF-16 surrogate"):
            rules.check_unicode(bad, "f")

"""flask_havn.currency: minor units, exact Decimal conversion, the audit trail, rates and their sources."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, List

import pytest

from flask_havn.currency import (
    AUDIT_KEYS,
    EXTRA_CURRENCIES,
    HAVN_SDK_CURRENCIES,
    SUPPORTED_CURRENCIES,
    TABLE_SOURCE,
    Conversion,
    convert_to_usd,
    failure_details,
    from_usd_cents,
    minor_units,
    parse_rate,
    parse_rate_table,
    rate_text,
    resolve_rate,
    to_usd_cents,
    with_audit,
)
from flask_havn.errors import HAVNConfigError, HAVNValidationError


def test_accepted_currencies_are_havns_26_plus_its_minor_unit_tables_7():
    assert len(HAVN_SDK_CURRENCIES) == 26 and {"USD", "IDR", "JPY", "EUR"} <= HAVN_SDK_CURRENCIES
    assert EXTRA_CURRENCIES == {"BHD", "JOD", "KWD", "OMR", "TND", "CLP", "ISK"}
    assert SUPPORTED_CURRENCIES == HAVN_SDK_CURRENCIES | EXTRA_CURRENCIES and len(SUPPORTED_CURRENCIES) == 33


@pytest.mark.parametrize("currency, digits", [("IDR", 0), ("JPY", 0), ("KRW", 0), ("VND", 0), ("CLP", 0), ("ISK", 0),
                                              ("EUR", 2), ("USD", 2), ("GBP", 2), ("KWD", 3), ("BHD", 3),
                                              ("JOD", 3), ("OMR", 3), ("TND", 3)])
def test_minor_units(currency, digits):
    assert minor_units(currency) == digits


def test_every_accepted_currency_has_minor_units():
    assert {minor_units(code) for code in SUPPORTED_CURRENCIES} == {0, 2, 3}


@pytest.mark.parametrize("code", ["XAU", "idr", "", "US", None, 840])
def test_an_unknown_currency_is_refused_by_name_with_the_accepted_list(code):
    with pytest.raises(HAVNValidationError) as info:
        minor_units(code)
    assert info.value.field == "currency"
    assert f"{code!r} is not a currency HAVN accepts" in info.value.message
    assert "IDR" in info.value.message and "KWD" in info.value.message
    with pytest.raises(HAVNValidationError):
        to_usd_cents(1000, code, "1")


@pytest.mark.parametrize("amount, currency, rate, cents", [
    (150000, "IDR", "0.0000633", 950),     # 9.495 USD -> 949.5 cents -> half up
    (150000, "IDR", "0.0000667", 1001),    # the contract's submitted amount
    (1000, "EUR", "1.08", 1080),           # 10.00 EUR
    (1000, "JPY", "0.0067", 670),          # 1000 yen
    (1000, "KWD", "3.25", 325),            # 1.000 KWD
    (1234, "KWD", "3.25", 401),            # 1.234 KWD = 4.0105 USD -> 401 cents
    (12345, "USD", "1", 12345),
    (1, "EUR", "0.5", 1),                  # 0.5 cent -> 1 (half up, not half even)
    (3, "EUR", "0.5", 2),                  # 1.5 cents -> 2
    (5, "EUR", "0.5", 3),                  # 2.5 cents -> 3 (banker's rounding would say 2)
    (1, "IDR", "0.0000633", 0),            # a rupiah is worth less than half a cent
])
def test_to_usd_cents(amount, currency, rate, cents):
    assert to_usd_cents(amount, currency, rate) == cents
    assert to_usd_cents(amount, currency, Decimal(rate)) == cents


def test_conversion_is_exact_however_long_the_rate():
    # Just under half a cent, with the longest rate accepted (20 significant digits): one rounding,
    # at the end, gives 0 (rounding the product first to 0.5 cent would make it 1).
    just_under = "0." + "4" + "9" * 19
    assert to_usd_cents(1, "EUR", just_under) == 0
    assert to_usd_cents(1, "JPY", "0.00" + "4" + "9" * 19) == 0
    assert to_usd_cents(1, "EUR", "0.5") == 1
    # 9 + 20 digits: past Decimal's default 28-digit precision, still exact.
    assert to_usd_cents(999_999_999, "KWD", "0.00" + "9" * 20) == 1_000_000  # 999,999.999 KWD × ~0.01 USD


def test_round_trip_for_display():
    assert from_usd_cents(1080, "EUR", "1.08") == 1000
    assert from_usd_cents(950, "IDR", "0.0000633") == 150079
    assert from_usd_cents(325, "KWD", "3.25") == 1000
    assert from_usd_cents(500, "USD", "1") == 500


@pytest.mark.parametrize("rate", [1.08, True, "abc", "0", "-1", "NaN", "Infinity", "1e10", None, [1],
                                  "9.9e-13", Decimal("1e-13")])
def test_bad_rates_refused(rate):
    with pytest.raises(HAVNValidationError) as info:
        parse_rate(rate)
    assert info.value.field == "exchange_rate"


@pytest.mark.parametrize("rate", [
    "1e-999999999",                       # would print a billion characters
    "-1e-999999999",
    "1e999999999",
    "0.0000633" + "1" * 91,               # a 100-digit rate
    "1" * 100,
    Decimal("1e-70"),                     # what a careless rate provider may hand over
    Decimal("0.0000633" + "7" * 20),      # 23 significant digits
    " " * 5 + "1" * 200,
])
def test_rates_that_would_not_print_in_64_characters_are_refused_saying_what_is_accepted(rate):
    with pytest.raises(HAVNValidationError) as info:
        parse_rate(rate)
    assert info.value.field == "exchange_rate"
    assert "from 1e-12 to 1e9 with at most 20 significant digits" in info.value.message
    with pytest.raises(HAVNValidationError):
        rate_text(rate)


@pytest.mark.parametrize("rate, text", [
    ("1e-12", "0.000000000001"),
    ("1.2345678901234567890e-12", "0.0000000000012345678901234567890"),  # the longest: 33 characters
    ("123456789.01234567890", "123456789.01234567890"),
    ("1e9", "1000000000"),
    ("1." + "0" * 60, "1"),                                                 # trailing zeros are not digits
    ("0.00006330000000000000000000", "0.0000633"),
])
def test_every_accepted_rate_prints_short(rate, text):
    assert rate_text(rate) == text and len(text) <= 64
    assert parse_rate(rate) == Decimal(rate)


def test_a_tiny_rate_from_the_provider_is_a_clear_config_error():
    with pytest.raises(HAVNConfigError) as info:
        resolve_rate("IDR", provider=lambda currency: (Decimal("1e-70"), "broken feed"))
    assert "rate for IDR is unusable" in info.value.message
    assert "from 1e-12 to 1e9 with at most 20 significant digits" in info.value.message
    with pytest.raises(HAVNConfigError, match="at most 20 significant digits"):
        resolve_rate("IDR", provider=lambda currency: ("0." + "1" * 100, "long feed"))


def test_a_float_rate_says_how_to_write_it():
    with pytest.raises(HAVNValidationError) as info:
        to_usd_cents(150000, "IDR", 0.0000633)
    assert "not a float" in info.value.message and '"0.0000633"' in info.value.message


@pytest.mark.parametrize("amount", [1.0, 150000.0, True, "150000", Decimal("1")])
def test_amounts_must_be_integer_minor_units(amount):
    with pytest.raises(HAVNValidationError) as info:
        to_usd_cents(amount, "IDR", "0.0000633")
    assert info.value.field == "amount"
    with pytest.raises(HAVNValidationError):
        convert_to_usd(amount, "IDR", "0.0000633")


def test_rate_text_is_plain_decimal():
    assert rate_text("6.33E-5") == "0.0000633"
    assert rate_text(Decimal("1.080")) == "1.080"
    assert rate_text(" 3.25 ") == "3.25"


def test_convert_to_usd_gives_amounts_and_the_audit_trail():
    conversion = convert_to_usd(150000, "IDR", "0.0000633", source="ECB 2026-11-27")
    assert conversion == Conversion(original_amount=150000, original_currency="IDR", rate=Decimal("0.0000633"),
                                    source="ECB 2026-11-27", amount_usd=950)
    assert conversion.audit_fields() == {"original_currency": "IDR", "original_amount": 150000,
                                         "exchange_rate": "0.0000633"}
    with_subtotal = convert_to_usd(1234, "KWD", "3.25", subtotal=2000)
    assert (with_subtotal.amount_usd, with_subtotal.subtotal_usd) == (401, 650)
    assert list(with_subtotal.audit_fields()) == list(AUDIT_KEYS)
    assert with_subtotal.audit_fields()["original_subtotal"] == 2000


@pytest.mark.parametrize("args, field", [
    ((0, "IDR", "1"), "amount"), ((-5, "IDR", "1"), "amount"), ((1, "XAU", "1"), "currency"),
    ((1, "USD", "2"), "exchange_rate"), ((1, "IDR", 1e-5), "exchange_rate"),
])
def test_convert_to_usd_refuses_bad_input(args, field):
    with pytest.raises(HAVNValidationError) as info:
        convert_to_usd(*args)
    assert info.value.field == field


def test_audit_fits_alone():
    audit = convert_to_usd(150000, "IDR", "0.0000633").audit_fields()
    assert with_audit(None, audit) == audit
    assert with_audit({}, audit) == audit


def test_own_fields_plus_audit_overflow_the_cap_and_the_error_explains_the_choice():
    audit = convert_to_usd(150000, "IDR", "0.0000633").audit_fields()
    with pytest.raises(HAVNValidationError) as info:
        with_audit({"order_id": "42"}, audit)
    message = info.value.message
    assert info.value.field == "custom_fields"
    assert "at most 3" in message and "takes 3" in message and "order_id" in message
    assert "drop your own custom_fields" in message and 'HAVN_CURRENCY_CONVERSION = "server"' in message
    assert "Nothing was sent" in message


def test_a_subtotal_alone_overflows_the_cap():
    audit = convert_to_usd(150000, "IDR", "0.0000633", subtotal=200000).audit_fields()
    with pytest.raises(HAVNValidationError) as info:
        with_audit(None, audit)
    assert "takes 4" in info.value.message and "original_subtotal" in info.value.message
    assert "subtotal" in info.value.message and 'HAVN_CURRENCY_CONVERSION = "server"' in info.value.message


def test_a_host_field_named_like_the_audit_is_refused_not_overwritten():
    audit = convert_to_usd(150000, "IDR", "0.0000633").audit_fields()
    with pytest.raises(HAVNValidationError) as info:
        with_audit({"exchange_rate": "mine"}, audit)
    assert "exchange_rate is reserved" in info.value.message


def test_rate_table_from_mapping_and_strings():
    expected = {"IDR": Decimal("0.0000633"), "EUR": Decimal("1.08")}
    assert parse_rate_table({"idr": "0.0000633", " EUR ": Decimal("1.08")}) == expected
    assert parse_rate_table('{"IDR": "0.0000633", "EUR": 1.08}') == expected  # JSON text is exact
    assert parse_rate_table("IDR=0.0000633, EUR=1.08") == expected
    assert parse_rate_table({"USD": "1"}) == {"USD": Decimal(1)}
    with pytest.raises(ValueError, match="not a float"):
        parse_rate_table({"IDR": 0.0000633})


def test_resolve_rate_prefers_the_provider_and_falls_back_to_the_table():
    asked: List[str] = []

    def provider(currency: str) -> Any:
        asked.append(currency)
        return (Decimal("0.000064"), "bank feed") if currency == "IDR" else None

    table = {"IDR": Decimal("0.0000633"), "EUR": Decimal("1.08")}
    assert resolve_rate("IDR", provider=provider, table=table) == (Decimal("0.000064"), "bank feed")
    assert resolve_rate("EUR", provider=provider, table=table) == (Decimal("1.08"), TABLE_SOURCE)
    assert resolve_rate("EUR", table=table) == (Decimal("1.08"), "HAVN_EXCHANGE_RATES")
    assert asked == ["IDR", "EUR"]
    assert resolve_rate("USD", provider=provider) == (Decimal(1), "USD")


def test_no_rate_anywhere_says_the_three_ways_out():
    with pytest.raises(HAVNConfigError) as info:
        resolve_rate("KWD", table={"IDR": Decimal("0.0000633")})
    message = info.value.message
    assert "no exchange rate for KWD" in message
    assert "HAVN_EXCHANGE_RATES" in message and "@havn.rate_provider" in message and '"server"' in message


@pytest.mark.parametrize("answer, says", [
    ((0.0000633, "feed"), "not a float"),
    (("lots", "feed"), "not a decimal number"),
    (("0.0000633", ""), "must name the source"),
    (("0.0000633", None), "must name the source"),
    (("0.0000633", "x" * 201), "must name the source"),
    ("0.0000633", "return a tuple"),
    (("0.0000633", "feed", "extra"), "return a tuple"),
])
def test_a_provider_answering_nonsense_is_a_config_error(answer, says):
    with pytest.raises(HAVNConfigError) as info:
        resolve_rate("IDR", provider=lambda currency: answer)
    assert says in info.value.message


def test_failure_details_keep_only_well_typed_values():
    details = failure_details({
        "reason": "converted amount does not match server conversion", "original_amount": 150000,
        "original_currency": "IDR", "submitted_amount": 1001, "expected_amount": 949,
        "submitted_exchange_rate": "0.0000667", "server_exchange_rate": "0.0000633", "extra": "dropped"})
    assert details == {
        "reason": "converted amount does not match server conversion", "original_amount": 150000,
        "original_currency": "IDR", "submitted_amount": 1001, "expected_amount": 949,
        "submitted_exchange_rate": "0.0000667", "server_exchange_rate": "0.0000633"}
    odd = failure_details({"reason": 7, "original_amount": "150000", "expected_amount": True,
                           "original_currency": "RUPIAH", "server_exchange_rate": ["0.1"]})
    assert odd == {"reason": "conversion failed at HAVN", "original_amount": None, "original_currency": None,
                   "submitted_amount": None, "expected_amount": None, "submitted_exchange_rate": None,
                   "server_exchange_rate": None}

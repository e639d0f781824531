"""Minor units and Decimal conversion shared by the client and the sandbox."""
from __future__ import annotations

from decimal import Decimal

import pytest

from flask_havn.currency import SUPPORTED_CURRENCIES, from_usd_cents, minor_units, parse_rate, to_usd_cents
from flask_havn.errors import HAVNValidationError


def test_whitelist_is_the_sdks_26():
    assert len(SUPPORTED_CURRENCIES) == 26 and {"USD", "IDR", "JPY", "EUR"} <= SUPPORTED_CURRENCIES


@pytest.mark.parametrize("currency, digits", [("IDR", 0), ("JPY", 0), ("KRW", 0), ("VND", 0),
                                              ("EUR", 2), ("USD", 2), ("KWD", 3), ("BHD", 3)])
def test_minor_units(currency, digits):
    assert minor_units(currency) == digits


@pytest.mark.parametrize("amount, currency, rate, cents", [
    (150000, "IDR", "0.0000633", 950),     # 9.495 USD -> 949.5 cents -> half up
    (150000, "IDR", "0.0000667", 1001),    # the contract's submitted amount
    (1000, "EUR", "1.08", 1080),           # 10.00 EUR
    (1000, "JPY", "0.0067", 670),          # 1000 yen
    (1000, "KWD", "3.25", 325),            # 1.000 KWD
    (12345, "USD", "1", 12345),
    (1, "EUR", "0.5", 1),                  # 0.5 cent -> 1 (half up, not half even)
    (3, "EUR", "0.5", 2),                  # 1.5 cents -> 2
])
def test_to_usd_cents(amount, currency, rate, cents):
    assert to_usd_cents(amount, currency, rate) == cents
    assert to_usd_cents(amount, currency, Decimal(rate)) == cents


def test_round_trip_for_display():
    assert from_usd_cents(1080, "EUR", "1.08") == 1000
    assert from_usd_cents(950, "IDR", "0.0000633") == 150079


@pytest.mark.parametrize("rate", [1.08, True, "abc", "0", "-1", "NaN", "Infinity", "1e10", None])
def test_bad_rates_refused(rate):
    with pytest.raises(HAVNValidationError) as info:
        parse_rate(rate)
    assert info.value.field == "exchange_rate"

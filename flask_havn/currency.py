"""Money arithmetic in integer minor units with ``Decimal`` only; no Flask, no floats.

Shared by the client and the sandbox so both round the same way.

Minor units follow HAVN's own table (its SDK's ``utils/currency.py``): IDR,
JPY, KRW and VND have 0 decimals (ISO 4217 gives IDR 2, but HAVN's amounts
such as ``150000`` IDR are whole rupiah); BHD, JOD, KWD, OMR and TND have 3;
every other currency has 2.

Rounding rule: a converted amount is quantized to whole USD cents with
``ROUND_HALF_UP`` (HAVN's documented helper), once, at the end.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Union

from .errors import HAVNValidationError

__all__ = [
    "SUPPORTED_CURRENCIES",
    "minor_units",
    "parse_rate",
    "to_usd_cents",
    "from_usd_cents",
    "ROUNDING",
]

#: The 26 currencies the official SDK lets through to ``POST /transaction``.
SUPPORTED_CURRENCIES = frozenset(
    "USD EUR GBP JPY CNY AUD CAD CHF HKD SGD SEK NOK DKK INR IDR MYR PHP THB VND KRW TWD BRL MXN ZAR TRY RUB".split()
)
_ZERO_DECIMALS = frozenset({"IDR", "JPY", "KRW", "VND", "CLP", "ISK"})
_THREE_DECIMALS = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
#: The one rounding mode used wherever money is converted.
ROUNDING = ROUND_HALF_UP
_MAX_RATE = Decimal("1e9")

RateLike = Union[str, Decimal, int]


def minor_units(currency: str) -> int:
    """Decimal places of ``currency``'s minor unit (0, 2 or 3)."""
    if currency in _ZERO_DECIMALS:
        return 0
    if currency in _THREE_DECIMALS:
        return 3
    return 2


def parse_rate(rate: RateLike, *, field: str = "exchange_rate") -> Decimal:
    """A positive, finite rate ≤ 1e9 as ``Decimal``; floats are refused (they are inexact)."""
    if isinstance(rate, (float, bool)) or not isinstance(rate, (str, Decimal, int)):
        raise HAVNValidationError(field, "give the rate as a decimal string or Decimal, not a float")
    try:
        value = Decimal(rate)
    except InvalidOperation:
        raise HAVNValidationError(field, f"{rate!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0 or value > _MAX_RATE:
        raise HAVNValidationError(field, "must be a positive, finite number no larger than 1e9")
    return value


def to_usd_cents(amount: int, currency: str, usd_per_unit: RateLike) -> int:
    """Convert ``amount`` minor units of ``currency`` to USD cents (half-up, once)."""
    if currency == "USD":
        return amount
    rate = parse_rate(usd_per_unit)
    major = Decimal(amount).scaleb(-minor_units(currency))
    return int((major * rate * 100).quantize(Decimal(1), rounding=ROUNDING))


def from_usd_cents(cents: int, currency: str, usd_per_unit: RateLike) -> int:
    """Convert USD cents to minor units of ``currency`` (for display; half-up)."""
    if currency == "USD":
        return cents
    rate = parse_rate(usd_per_unit)
    major = Decimal(cents).scaleb(-2) / rate
    return int(major.scaleb(minor_units(currency)).quantize(Decimal(1), rounding=ROUNDING))

"""Amounts as people type and read them, converted to and from integer minor units."""
from __future__ import annotations

from decimal import Decimal, DecimalException, InvalidOperation

from flask_havn.admin.display import format_money
from flask_havn.currency import SUPPORTED_CURRENCIES, minor_units

__all__ = ["CURRENCIES", "parse_amount", "format_money"]

#: Checkout currencies: USD first, then HAVN's others alphabetically.
CURRENCIES = ("USD",) + tuple(sorted(SUPPORTED_CURRENCIES - {"USD"}))
#: Largest power of ten an amount may reach (a quadrillion): far beyond any checkout, far inside Decimal.
_MAX_EXPONENT = 15


def parse_amount(text: str, currency: str) -> int:
    """``"100.00"`` USD → ``10000``; raises ``ValueError`` with a message for the form."""
    cleaned = (text or "").strip().replace(",", "").replace("_", "")
    if not cleaned:
        raise ValueError("Enter an amount, e.g. 100.00.")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{text.strip()!r} is not a number; enter an amount like 100.00.") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("Enter an amount greater than zero.")
    if value.adjusted() > _MAX_EXPONENT:  # "1e999999999": Decimal overflows (not ValueError) past here
        raise ValueError(f"{text.strip()[:20]!r} is far too large; enter an amount like 100.00.")
    places = minor_units(currency)
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # a finite value's exponent
    below = exponent + places  # < 0: digits below the minor unit (exact: no Decimal context rounding)
    if below < 0 and any(digits[below:]):
        unit = "whole units" if places == 0 else f"at most {places} decimals"
        raise ValueError(f"{currency} amounts take {unit}.")
    try:
        return int(value.scaleb(places))
    except DecimalException:  # not reachable within the bounds above; never a 500 at checkout
        raise ValueError(f"{text.strip()[:20]!r} is not an amount; enter an amount like 100.00.") from None

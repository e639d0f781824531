"""Amounts as people type and read them, converted to and from integer minor units."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Optional

from flask_havn.currency import SUPPORTED_CURRENCIES, minor_units

__all__ = ["CURRENCIES", "parse_amount", "format_money"]

#: Checkout currencies: USD first, then HAVN's others alphabetically.
CURRENCIES = ("USD",) + tuple(sorted(SUPPORTED_CURRENCIES - {"USD"}))


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
    places = minor_units(currency)
    minor = value.scaleb(places)
    if minor != minor.to_integral_value():
        unit = "whole units" if places == 0 else f"at most {places} decimals"
        raise ValueError(f"{currency} amounts take {unit}.")
    return int(minor)


def format_money(minor: Optional[int], currency: Optional[str] = "USD") -> str:
    """``10000, "USD"`` → ``"100.00 USD"``; ``None`` → ``"—"``."""
    if minor is None:
        return "—"
    code = currency or "USD"
    places = minor_units(code)
    major = Decimal(int(minor)).scaleb(-places)
    return f"{major:,.{places}f} {code}"

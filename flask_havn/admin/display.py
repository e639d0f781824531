"""How the console (and ShopEasy) shows money: integer minor units as the currency's decimals."""
from __future__ import annotations

from decimal import Decimal
from typing import Optional

from ..currency import SUPPORTED_CURRENCIES, minor_units

__all__ = ["format_money"]


def format_money(minor: Optional[int], currency: Optional[str] = "USD") -> str:
    """``10000, "USD"`` → ``"100.00 USD"``; ``None`` → ``"—"``.

    A currency flask_havn does not accept (an old row, a hand-made one) shows
    the raw minor units and the code instead of breaking the page.
    """
    if minor is None:
        return "—"
    code = currency or "USD"
    if code not in SUPPORTED_CURRENCIES:
        return f"{int(minor)} (minor units) {code}"
    places = minor_units(code)
    major = Decimal(int(minor)).scaleb(-places)
    return f"{major:,.{places}f} {code}"

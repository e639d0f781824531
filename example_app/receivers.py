"""ShopEasy's receivers of flask_havn's webhook signals: they fill the activity feed.

Ordinary ``signal.connect`` functions, as the README tells hosts to write
them. They run inside the inbound event's database transaction, so they only
``db.session.add`` (never commit): the rows commit together with the event,
and if anything raises, nothing is kept and HAVN retries. They are idempotent
per event (a replayed event adds no second line).

What they store fits ShopEasy's columns on every database: a referral code
wider than ``ActivityItem.referral_code`` (or with a NUL) or a level beyond a
32-bit ``INTEGER`` is kept only in the message text (PostgreSQL would refuse
the row, and the event would fail on every retry). An event marked ``test_mode`` is
left out of the feed unless ShopEasy itself runs with ``HAVN_TEST_MODE``: a
test event (``flask havn trigger``) shows in the webhook log, not as money earned.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from flask import Flask

from flask_havn.models import column_length
from flask_havn.signals import commission_distributed, conversion_failed

from .extensions import db, havn
from .models import ActivityItem
from .money import CURRENCIES, format_money

__all__ = ["connect_receivers", "record_commissions", "record_conversion_failure"]


def _already_recorded(event_id: str) -> bool:
    found = db.session.scalar(sa.select(ActivityItem.id).where(ActivityItem.event_id == event_id).limit(1))
    return found is not None


def _payment_label(payment: Any) -> str:
    if payment is None:
        return "a payment ShopEasy does not know"
    project = getattr(payment, "project", None)
    name = f" of {project.name}" if project is not None else ""
    return f"payment #{payment.id}{name}"


#: Range of a 32-bit ``INTEGER`` column (``ActivityItem.level``) on PostgreSQL.
#: What ShopEasy's INTEGER columns hold (PostgreSQL's 32-bit integer).
_INT_MIN, _INT_MAX = -(2 ** 31), 2 ** 31 - 1


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int_column(value: Optional[int]) -> Optional[int]:
    """``value`` if an INTEGER column holds it, else ``None`` (a comparison: ``None in range(...)``
    would walk the whole range)."""
    return value if value is not None and _INT_MIN <= value <= _INT_MAX else None


def _fits(value: Any, column: str) -> Optional[str]:
    """``value`` if it is text that fits ``ActivityItem.<column>`` (and has no NUL), else ``None``."""
    if not isinstance(value, str) or "\x00" in value:
        return None
    return value if len(value) <= column_length(ActivityItem, column) else None


def _shown(text: str) -> str:
    """``text`` for the message column: a NUL (flask_havn stores it in the event's JSON, but no text
    column takes it) shown as U+FFFD."""
    return text.replace("\x00", "\ufffd")


def _not_ours(event: Any) -> bool:
    """A test-mode event while ShopEasy runs live (or the other way round): not for the feed."""
    return event is not None and bool(event.test_mode) != bool(havn.config.test_mode)


def record_commissions(sender: Flask, *, event: Any, payment: Any, commissions: List[Dict[str, Any]],
                       **extra: Any) -> None:
    """``commission_distributed``: one activity line per commission earned."""
    if _not_ours(event) or _already_recorded(event.id):
        return
    for line, commission in enumerate(commissions):
        code = commission.get("referral_code")
        code = code if isinstance(code, str) else None
        level = _int(commission.get("level"))
        amount = _int(commission.get("amount"))
        level_text = f" (level {level})" if level is not None else ""
        db.session.add(ActivityItem(
            kind="commission", event_id=event.id, line=line,
            payment_id=payment.id if payment is not None else None,
            referral_code=_fits(code, "referral_code"), level=_int_column(level),
            amount=amount, currency="USD",
            message=f"{_shown(code or 'An associate')} earned {format_money(amount, 'USD')}{level_text} "
                    f"on {_payment_label(payment)}",
        ))


def record_conversion_failure(sender: Flask, *, event: Any, payment: Any, reason: str,
                              details: Optional[Dict[str, Any]] = None, **extra: Any) -> None:
    """``conversion_failed``: one activity line with HAVN's reason and amounts.

    Sent once per failure, from HAVN's event or (``event`` is ``None``) from its
    synchronous answer, whichever came first; keyed on the event id or the payment.
    """
    key = event.id if event is not None else f"answer:payment:{payment.id if payment is not None else '?'}"
    if _not_ours(event) or _already_recorded(key):
        return
    data = details if details is not None else (event.data if event is not None else {})
    currency = data.get("original_currency") if isinstance(data.get("original_currency"), str) else None
    original = _int(data.get("original_amount"))
    if (original is None or currency not in CURRENCIES) and payment is not None:
        # HAVN's copy is missing or names no currency we can format ("XXX", "usd", ""): ours is exact.
        original, currency = payment.amount, payment.currency
    submitted, expected = _int(data.get("submitted_amount")), _int(data.get("expected_amount"))
    amounts = ""
    if submitted is not None and expected is not None:
        amounts = (f": sent {format_money(submitted, 'USD')}, HAVN expected {format_money(expected, 'USD')}")
    paid = ""
    if original is not None and currency in CURRENCIES:
        paid = f" ({format_money(original, currency)})"
    elif original is not None:  # an unknown payment in a code we cannot format: the raw figures
        paid = f" ({original} minor units{f' of {currency[:3]!r}' if currency else ''})"
    currency = currency if currency in CURRENCIES else None  # the column holds a known 3-letter code
    db.session.add(ActivityItem(
        kind="conversion_failed", event_id=key, line=0,
        payment_id=payment.id if payment is not None else None,
        amount=original, currency=currency,
        message=f"Conversion failed on {_payment_label(payment)}{paid} — {reason}{amounts}",
    ))


def connect_receivers(app: Flask) -> None:
    """Connect the receivers for ``app`` (the real app object is the signals' sender)."""
    commission_distributed.connect(record_commissions, sender=app)
    conversion_failed.connect(record_conversion_failure, sender=app)

"""ShopEasy's own table: the activity feed its signal receivers fill.

A real host keeps what HAVN tells it in its own tables, next to flask_havn's
``havn_*`` ones: here one row per commission earned and per conversion failure.
"""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from .extensions import db

__all__ = ["ActivityItem", "ACTIVITY_KINDS"]

#: What an activity row records.
ACTIVITY_KINDS = ("commission", "conversion_failed")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class ActivityItem(db.Model):  # type: ignore[name-defined]
    """One line of the activity feed, written by a signal receiver (see receivers.py)."""

    __tablename__ = "shopeasy_activity"
    __table_args__ = (sa.UniqueConstraint("event_id", "line", name="uq_shopeasy_activity_event_line"),)

    id = sa.Column(sa.Integer, primary_key=True)
    kind = sa.Column(sa.String(30), nullable=False, index=True)
    #: The HAVN event this line came from (``answer:payment:<id>`` for a conversion failure HAVN's
    #: synchronous answer reported first), and its position in it (one line per commission).
    event_id = sa.Column(sa.String(100), nullable=False)
    line = sa.Column(sa.Integer, nullable=False, default=0)
    #: The local payment (``havn_payments.id``) the event is about, when ShopEasy has it.
    payment_id = sa.Column(sa.Integer, nullable=True, index=True)
    #: For a commission: who earned it (referral code) and at which level.
    referral_code = sa.Column(sa.String(50), nullable=True, index=True)
    level = sa.Column(sa.Integer, nullable=True)
    #: Amount in minor units of ``currency`` (commissions: USD cents).
    amount = sa.Column(sa.BigInteger, nullable=True)
    currency = sa.Column(sa.String(3), nullable=True)
    message = sa.Column(sa.Text, nullable=False)
    created_at = sa.Column(sa.DateTime, nullable=False, default=_utcnow)

    def __repr__(self) -> str:
        return f"<ActivityItem {self.id} {self.kind} {self.event_id}#{self.line}>"

"""Activity: the commission feed and conversion failures (filled by ShopEasy's receivers) and the webhook log."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from ..extensions import db, havn
from ..models import ActivityItem

__all__ = ["bp", "FEED_SIZE"]

bp = Blueprint("activity", __name__)

#: Lines shown per list.
FEED_SIZE = 100


@bp.get("/activity")
def index() -> Any:
    """Newest first: commissions earned, conversion failures, and every HAVN event received."""
    items = db.session.execute(
        db.select(ActivityItem).order_by(ActivityItem.id.desc()).limit(FEED_SIZE)).scalars().all()
    WebhookEvent = havn.models.WebhookEvent
    events = db.session.execute(
        db.select(WebhookEvent).order_by(WebhookEvent.received_at.desc()).limit(FEED_SIZE)).scalars().all()
    commissions = [item for item in items if item.kind == "commission"]
    failures = [item for item in items if item.kind == "conversion_failed"]
    return render_template("activity.html", commissions=commissions, failures=failures, events=events)

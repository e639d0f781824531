"""Looking at and resetting the outbox as a whole: the status report and requeueing dead payments."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Dict, Optional

import sqlalchemy as sa

from ..models import DELIVERY_STATES, utcnow
from .claims import count_due

if TYPE_CHECKING:  # pragma: no cover
    from ..state import HAVNState

__all__ = ["requeue_dead", "status_report", "REQUEUED"]

#: What a requeued payment's delivery columns become: back in line with a fresh attempt budget.
REQUEUED: Dict[str, Any] = {"delivery_state": "pending", "attempts": 0, "next_attempt_at": None,
                            "claimed_by": None, "claimed_at": None}


def requeue_dead(state: "HAVNState") -> int:
    """Put every ``dead`` payment back in line (``pending``, attempts reset); how many."""
    Payment = state.models.Payment  # type: ignore[union-attr]
    result = state.session.execute(
        sa.update(Payment)
        .where(Payment.delivery_state == "dead", Payment.status == "completed")
        .values(updated_at=utcnow(), **REQUEUED)
        .execution_options(synchronize_session=False)
    )
    state.session.commit()
    return int(result.rowcount or 0)


def status_report(state: "HAVNState", *, now: Optional[datetime] = None) -> Dict[str, Any]:
    """Counts of completed payments by delivery state, how many are due, and the oldest undelivered."""
    Payment = state.models.Payment  # type: ignore[union-attr]
    session = state.session
    rows = session.execute(
        sa.select(Payment.delivery_state, sa.func.count())
        .where(Payment.status == "completed")
        .group_by(Payment.delivery_state)
    ).all()
    by_state = {name: 0 for name in DELIVERY_STATES}
    for name, count in rows:
        by_state[name] = int(count)
    oldest = session.execute(
        sa.select(Payment.id, Payment.created_at)
        .where(Payment.status == "completed", Payment.delivery_state.in_(("pending", "failed", "sending")))
        .order_by(Payment.created_at, Payment.id)
        .limit(1)
    ).first()
    not_completed = int(session.execute(
        sa.select(sa.func.count()).select_from(Payment).where(Payment.status != "completed")).scalar() or 0)
    session.rollback()
    return {
        "by_state": by_state,
        "due": count_due(state, now=now),
        "oldest_pending": None if oldest is None else {"id": oldest[0], "created_at": oldest[1]},
        "not_completed": not_completed,
    }

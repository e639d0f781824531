"""The 0.1 module-level delivery functions, kept as one-line calls of the current app's outbox.

New code uses the service: ``havn.outbox.deliver(payment_id)`` or
``get_state(app).outbox``; see :mod:`flask_havn.outbox`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Dict, Optional

from .outbox import classify_error, lease_seconds, money_fields, retry_delay
from .state import get_state

__all__ = ["deliver", "deliver_due", "count_due", "claim", "requeue_dead", "status_report", "run_worker",
           "classify_error", "lease_seconds", "money_fields", "retry_delay"]


def deliver(payment_id: Any, *, now: Optional[datetime] = None, worker_id: Optional[str] = None) -> Any:
    """``havn.outbox.deliver(payment_id)`` on the current app."""
    return get_state().outbox.deliver(payment_id, now=now, worker_id=worker_id)


def deliver_due(*, now: Optional[datetime] = None, concurrency: int = 1, limit: Optional[int] = None,
                on_delivered: Optional[Callable[[Any], None]] = None) -> Dict[str, int]:
    """``havn.outbox.deliver_due(…)`` on the current app."""
    return get_state().outbox.deliver_due(now=now, concurrency=concurrency, limit=limit, on_delivered=on_delivered)


def run_worker(**kwargs: Any) -> None:
    """``havn.outbox.run_worker(…)`` on the current app."""
    get_state().outbox.run_worker(**kwargs)


def count_due(*, now: Optional[datetime] = None) -> int:
    """``havn.outbox.count_due()`` on the current app."""
    return get_state().outbox.count_due(now=now)


def claim(payment_id: int, *, worker_id: str, now: Optional[datetime] = None) -> bool:
    """Take ``payment_id`` for delivery if it is due (see :func:`flask_havn.outbox.claims.claim`)."""
    from .outbox.claims import claim as claim_row

    return claim_row(get_state().require_db(), payment_id, worker_id=worker_id, now=now)


def requeue_dead() -> int:
    """``havn.outbox.requeue_dead()`` on the current app."""
    return get_state().outbox.requeue_dead()


def status_report(*, now: Optional[datetime] = None) -> Dict[str, Any]:
    """``havn.outbox.status()`` on the current app."""
    return get_state().outbox.status(now=now)

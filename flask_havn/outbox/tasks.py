"""What a queue task does, whatever the engine: one delivery attempt and when to run again; the sweep.

A task carries only a payment id. It runs the worker's own attempt (claim,
send, record: :meth:`~flask_havn.outbox.Outbox.attempt`), so it is idempotent:
only the task holding the claim sends, and HAVN deduplicates by the payment's
identity and idempotency key. :func:`run_task` returns when the task should
run again, and the engine re-schedules it (Celery ``retry(countdown=…)``, RQ
``enqueue_in``) — retries belong to the queue, with the outbox's own backoff:

* ``failed`` → again at the row's ``next_attempt_at``;
* ``sent``, ``dead``, ``conversion_failed`` → done (dead is dead, as in the worker);
* not claimed (another task holds it, or it is not due yet) → again when it
  would be due: its ``next_attempt_at``, or when the holder's lease runs out
  (a holder that crashed leaves the row to this task); done when it needs
  nothing more (sent, dead, not completed).

:func:`sweep` is the safety net for a task the broker lost (down at commit
time, a worker killed with its prefetched messages): once no task waits in
the queue, every payment that has been due, untouched, for
``HAVN_QUEUE_SWEEP_GRACE`` seconds has lost its task, and gets a new one. It
is marked (``updated_at``) so that the next sweeps leave it alone for as long
again. While tasks wait, the sweep does nothing: a payment due for long may
just be behind them, and enqueueing it again would only lengthen the queue
(so give HAVN a queue of its own: the default ``havn``). A duplicate task is
harmless all the same: its claim fails and it ends.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, List, Optional

import sqlalchemy as sa

from ..models import utcnow
from .attempt import Attempt, attempt
from .claims import CLAIMABLE, claim, due, lease_seconds, new_worker_id
from .schedule import TaskQueue, send

if TYPE_CHECKING:  # pragma: no cover
    from ..state import HAVNState

__all__ = ["DONE", "next_run", "run_task", "sweep", "sweep_due"]

logger = logging.getLogger("flask_havn.delivery")

#: Delivery states after which a payment's task has nothing left to do.
DONE = ("sent", "dead", "conversion_failed")
#: Shortest wait before a task looks again at a payment another task holds, in seconds.
_MIN_RECHECK = 1.0
#: Ids marked by one UPDATE of the sweep (keeps the statement's parameter list bounded).
_MARK_BATCH = 500


def run_task(state: "HAVNState", payment_id: int, *, now: Optional[datetime] = None) -> Optional[float]:
    """One queue task for ``payment_id``: the delivery attempt, then seconds until it should run again (``None``: done).

    The attempt is the worker pass's own: claim the id, then send and record
    (:func:`~flask_havn.outbox.claims.claim`, :func:`~flask_havn.outbox.attempt.attempt`).
    An unknown id (its transaction never committed, or the row was deleted)
    is logged and ends the task.
    """
    worker_id = new_worker_id()
    if claim(state, payment_id, worker_id=worker_id, now=now):
        done = attempt(state, payment_id, worker_id, now=now)
    else:
        Payment = state.models.Payment  # type: ignore[union-attr]
        row = state.session.get(Payment, payment_id, populate_existing=True)
        if row is None:
            logger.warning("delivery task for payment %s: no such payment (deleted, or its transaction never "
                           "committed); nothing to do", payment_id)
            return None
        done = Attempt(payment=row, state=None)
    return next_run(state, done, now=now)


def next_run(state: "HAVNState", done: Attempt, *, now: Optional[datetime] = None) -> Optional[float]:
    """Seconds until the task that made attempt ``done`` should run again, or ``None`` when it is done."""
    now = now or utcnow()
    row = done.payment
    if done.state in DONE:
        return None
    if done.state == "failed":
        return _until(row.next_attempt_at, now)
    # Not ours: nothing was due, another task held the claim, or our answer was superseded.
    if row.status != "completed" or row.delivery_state in DONE:
        return None
    if row.delivery_state in CLAIMABLE and row.next_attempt_at is not None and row.next_attempt_at > now:
        return _until(row.next_attempt_at, now)
    # Another task holds the claim (``sending``), or is taking it this instant (due, yet our claim failed):
    # look again once its lease would have run out, in case that task dies. Never sooner than a second,
    # so that a row locked for a moment does not spin the task.
    claimed = row.claimed_at if row.delivery_state == "sending" and row.claimed_at is not None else now
    return max(_MIN_RECHECK, _until(claimed + timedelta(seconds=lease_seconds(state.config)), now))


def _until(moment: Optional[datetime], now: datetime) -> float:
    if moment is None:
        return 0.0
    return max(0.0, (moment - now).total_seconds())


def sweep_due(state: "HAVNState", *, now: Optional[datetime] = None, limit: Optional[int] = None) -> List[int]:
    """Ids of the payments due for ``HAVN_QUEUE_SWEEP_GRACE`` seconds and untouched since (read only)."""
    now = now or utcnow()
    Payment = state.models.Payment  # type: ignore[union-attr]
    query = (sa.select(Payment.id).where(due(Payment, now, lease_seconds(state.config)), _quiet(state, now))
             .order_by(Payment.id).limit(limit))
    ids = [int(i) for i in state.session.execute(query).scalars()]
    state.session.rollback()
    return ids


def sweep(state: "HAVNState", queue: TaskQueue, *, now: Optional[datetime] = None,
          limit: Optional[int] = None, force: bool = False) -> int:
    """Enqueue a task for every payment :func:`sweep_due` finds, and mark those; how many were enqueued.

    Nothing while tasks wait in the queue (unless ``force``): those due for
    long may be behind them. Marking sets ``updated_at`` to ``now`` (unless a
    task touched the row meanwhile), so a payment whose new task is still to
    run is not enqueued again by the next sweeps. One the broker refused
    stays unmarked, for the next sweep.
    """
    now = now or utcnow()
    if not force:
        waiting = queue.waiting()
        if waiting:
            logger.info("sweep skipped: %d task(s) wait in %s queue %r; payments due for long may be behind them",
                        waiting, queue.engine, queue.name)
            return 0
    ids = sweep_due(state, now=now, limit=limit)
    enqueued = [payment_id for payment_id in ids if send(queue, payment_id)]
    if enqueued:
        Payment = state.models.Payment  # type: ignore[union-attr]
        session = state.session
        try:
            for start in range(0, len(enqueued), _MARK_BATCH):
                batch = enqueued[start:start + _MARK_BATCH]
                session.execute(sa.update(Payment).where(Payment.id.in_(batch), _quiet(state, now))
                                .values(updated_at=now).execution_options(synchronize_session=False))
            session.commit()
        except Exception:
            session.rollback()
            raise
    if ids:
        logger.info("sweep: %d due payment(s) had no task; %d enqueued on %s queue %r", len(ids), len(enqueued),
                    queue.engine, queue.name)
    return len(enqueued)


def _quiet(state: "HAVNState", now: datetime) -> "sa.ColumnElement[bool]":
    """SQL condition: neither recorded, claimed, retried nor swept within the sweep's grace period."""
    Payment = state.models.Payment  # type: ignore[union-attr]
    before = now - timedelta(seconds=state.config.queue_sweep_grace)
    return sa.and_(Payment.updated_at <= before,
                   sa.or_(Payment.next_attempt_at.is_(None), Payment.next_attempt_at <= before))

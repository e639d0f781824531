"""The outbox: recorded completed payments and their delivery to HAVN.

A completed payment is committed first (the outbox row); delivery then sends
it, exactly once at HAVN, however many workers run. The package is split by
job: :mod:`.claims` (what is due, taking a row), :mod:`.attempt` (one send and
its recorded outcome), :mod:`.worker` (passes, threads, the loop),
:mod:`.backlog` (status, requeueing dead payments), :mod:`.schedule` (handing
payments to a task queue after the commit) and :mod:`.tasks` (what a queue
task does; the sweep). :class:`Outbox` is the
service the host uses: ``havn.outbox.deliver(payment)`` — the unit a task
queue calls inside ``app.app_context()`` —, ``havn.outbox.deliver_due()``…
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from ..errors import HAVNConfigError
from .attempt import Attempt, attempt, classify_error, money_fields, retry_delay
from .backlog import requeue_dead, status_report
from .claims import claim, count_due, lease_seconds, new_worker_id
from .schedule import QUEUED, TaskQueue, enqueue_after_commit
from .tasks import run_task, sweep
from .worker import SUPERSEDED, deliver_due, run_worker

if TYPE_CHECKING:  # pragma: no cover
    import threading

    from ..rows import PaymentRow
    from ..state import HAVNState

__all__ = ["Outbox", "Attempt", "SUPERSEDED", "classify_error", "lease_seconds", "money_fields", "retry_delay"]

logger = logging.getLogger("flask_havn.delivery")


class Outbox:
    """Delivery of one app's payments to HAVN (``havn.outbox``)."""

    def __init__(self, state: "HAVNState") -> None:
        self._state = state

    def __repr__(self) -> str:
        return "<Outbox>"

    def deliver(self, payment: Any, *, now: Optional[datetime] = None,
                worker_id: Optional[str] = None) -> "PaymentRow":
        """Claim, send and record one payment (a row or its id); return the row, whatever happened.

        A payment that is not due — already sent, not completed, claimed by
        another worker, waiting for ``next_attempt_at`` — is returned
        untouched. HAVN errors are recorded on the row, not raised; an unknown
        id raises :class:`~flask_havn.errors.HAVNRecordNotFoundError`. ``now``
        (naive UTC) replaces the clock, for tests and replays.
        """
        return self.attempt(payment, now=now, worker_id=worker_id).payment

    def attempt(self, payment: Any, *, now: Optional[datetime] = None, worker_id: Optional[str] = None) -> Attempt:
        """:meth:`deliver`, returning the :class:`Attempt` (``.state`` is ``None`` when nothing was due)."""
        row = self._state.payments.get(payment)
        worker_id = worker_id or new_worker_id()
        if not claim(self._state, row.id, worker_id=worker_id, now=now):
            self._state.session.refresh(row)
            return Attempt(payment=row, state=None)
        return attempt(self._state, row.id, worker_id, now=now)

    def deliver_inline(self, payment: Any) -> Any:
        """:meth:`deliver` for the request that recorded ``payment``: never raises into the host's request.

        Bounded by the client's deadline and retries; a failure is left on the
        row (``failed`` with ``next_attempt_at``) for the worker, and logged.
        """
        try:
            return self.deliver(payment)
        except Exception:
            logger.exception("inline delivery of payment %s failed; `flask havn deliver` will retry it", payment.id)
            session = self._state.session
            session.rollback()
            try:
                session.refresh(payment)
            except Exception:  # pragma: no cover - the database itself is gone
                pass
            return payment

    def schedule(self, payment: Any) -> Any:
        """Start the delivery of a payment that just became due, as ``HAVN_DELIVERY`` says; the row.

        ``inline``: :meth:`deliver_inline` now. ``worker``: nothing (``flask
        havn deliver`` takes it). ``celery``/``rq``: its task is enqueued once
        the session's transaction commits — at once when the caller has just
        committed — and never if it rolls back (see :mod:`.schedule`); a
        broker that is down is logged, and the sweep enqueues it later.
        """
        mode = self._state.config.delivery
        if mode == "inline":
            return self.deliver_inline(payment)
        if mode in QUEUED:
            enqueue_after_commit(self._state.session, self._queue(), payment)
        return payment

    def run_task(self, payment: Any, *, now: Optional[datetime] = None) -> Optional[float]:
        """What a queue task does: one attempt of ``payment`` (an id), then seconds until the task should run
        again, or ``None`` when it is done (see :func:`flask_havn.outbox.tasks.run_task`)."""
        return run_task(self._state, payment, now=now)

    def sweep(self, *, now: Optional[datetime] = None, limit: Optional[int] = None, force: bool = False) -> int:
        """Enqueue a task for every payment due for ``HAVN_QUEUE_SWEEP_GRACE`` seconds without one; how many.

        The periodic safety net of ``celery``/``rq`` delivery (Celery beat's
        ``flask-havn-sweep``, ``flask havn rq-worker``, ``flask havn sweep``);
        it waits while tasks wait in the queue, unless ``force`` (see
        :func:`flask_havn.outbox.tasks.sweep`).
        """
        return sweep(self._state, self._queue(), now=now, limit=limit, force=force)

    def _queue(self) -> TaskQueue:
        """The app's task queue, or a :class:`HAVNConfigError` saying how to get one."""
        mode = self._state.config.delivery
        if mode not in QUEUED:
            raise HAVNConfigError(f"HAVN_DELIVERY is {mode!r}: there is no task queue to sweep or enqueue on "
                                  '(set HAVN_DELIVERY = "celery" or "rq"; `flask havn deliver` sends every due payment)')
        queue = self._state.queue
        if queue is None:
            raise HAVNConfigError(
                f"HAVN_DELIVERY = {mode!r} but no task queue is bound to this app: call "
                "havn.init_celery(celery_app, app) in your app factory (see \"Scaling out\" in the README)")
        return queue

    def deliver_due(self, *, now: Optional[datetime] = None, concurrency: int = 1, limit: Optional[int] = None,
                    on_delivered: Optional[Callable[[Any], None]] = None) -> Dict[str, int]:
        """One pass over every due payment (see :func:`flask_havn.outbox.worker.deliver_due`)."""
        return deliver_due(self._state, now=now, concurrency=concurrency, limit=limit, on_delivered=on_delivered)

    def run_worker(self, *, interval: float = 5.0, concurrency: int = 1, stop: "Optional[threading.Event]" = None,
                   on_pass: Optional[Callable[[Dict[str, int]], None]] = None, **kwargs: Any) -> None:
        """Deliver pass after pass until ``stop`` is set (see :func:`flask_havn.outbox.worker.run_worker`)."""
        run_worker(self._state, interval=interval, concurrency=concurrency, stop=stop, on_pass=on_pass, **kwargs)

    def count_due(self, *, now: Optional[datetime] = None) -> int:
        """How many payments may be claimed now (or at ``now``)."""
        return count_due(self._state, now=now)

    def requeue_dead(self) -> int:
        """Put every ``dead`` payment back in line with a fresh attempt budget; how many."""
        return requeue_dead(self._state)

    def status(self, *, now: Optional[datetime] = None) -> Dict[str, Any]:
        """Payments by delivery state, how many are due, the oldest undelivered, how many not completed."""
        return status_report(self._state, now=now)

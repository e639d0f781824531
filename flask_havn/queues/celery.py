"""Delivery through the host's Celery app (``HAVN_DELIVERY = "celery"``).

``havn.init_celery(celery_app, app)`` registers two tasks on the host's
Celery app, both on the queue ``HAVN_QUEUE_NAME``:

* ``flask_havn.deliver(payment_id)`` — the outbox's attempt in ``app``'s app
  context; while the payment is ``failed`` it retries itself
  (``retry(countdown=…)``) at the row's ``next_attempt_at``. ``acks_late`` and
  ``reject_on_worker_lost``: a worker that dies mid-task leaves the message to
  another (the claim's lease keeps that second run from sending twice);
* ``flask_havn.sweep()`` — the safety net (:func:`flask_havn.outbox.tasks.sweep`),
  added to ``beat_schedule`` as ``flask-havn-sweep`` every ``sweep_every``
  seconds; run ``celery beat`` (or a worker with ``-B``) to fire it.

Workers must consume that queue (``celery -A … worker -Q havn``). Each worker
process disposes of the database connections it inherited when it starts
(``worker_process_init``). With the Redis broker, keep its
``visibility_timeout`` above ``HAVN_DELIVERY_MAX_BACKOFF`` or accept that a
long countdown is redelivered: the duplicate's claim fails and it ends.
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Dict, Optional

from celery import Celery
from celery.signals import worker_process_init
from flask import Flask

from ..errors import HAVNConfigError
from ..outbox.tasks import run_task, sweep
from ..state import get_state

if TYPE_CHECKING:  # pragma: no cover
    from ..state import HAVNState

__all__ = ["CeleryQueue", "DELIVER_TASK", "SWEEP_ENTRY", "SWEEP_TASK", "bind"]

#: Names of the tasks on the host's Celery app, and of the sweep's ``beat_schedule`` entry.
DELIVER_TASK = "flask_havn.deliver"
SWEEP_TASK = "flask_havn.sweep"
SWEEP_ENTRY = "flask-havn-sweep"

#: Which Flask app each Celery app delivers for (one each: the task names are fixed).
_BOUND: "weakref.WeakKeyDictionary[Celery, Flask]" = weakref.WeakKeyDictionary()


class CeleryQueue:
    """The Celery tasks a HAVN app delivers through (``get_state(app).queue``)."""

    engine = "celery"

    def __init__(self, celery_app: Celery, name: str, deliver: Any, sweep_task: Any) -> None:
        self.celery_app = celery_app
        self.name = name
        self.deliver = deliver
        self.sweep = sweep_task

    def __repr__(self) -> str:
        return f"<CeleryQueue {self.name!r}>"  # never the broker URL: it may hold a password

    def enqueue(self, payment_id: int, delay: float = 0.0) -> None:
        """One ``flask_havn.deliver`` task for ``payment_id``, now or ``delay`` seconds from now."""
        self.deliver.apply_async((payment_id,), queue=self.name, countdown=delay if delay > 0 else None)

    def waiting(self) -> int:
        """Messages ready in the broker's queue (a passive declare; a queue never declared holds none).

        Messages a worker has reserved — a countdown not yet due among them —
        are not counted.
        """
        with self.celery_app.connection_for_read() as connection:
            try:
                declared = connection.default_channel.queue_declare(queue=self.name, passive=True)
            except connection.channel_errors:
                return 0
            return int(declared.message_count)


def bind(app: Flask, celery_app: Celery, *, sweep_every: Optional[float] = 60.0) -> CeleryQueue:
    """Register the delivery and sweep tasks of ``app`` on ``celery_app``; the queue ``app`` now delivers through.

    Idempotent for the same pair. ``sweep_every`` (seconds) adds the sweep's
    ``beat_schedule`` entry unless the host has one named ``flask-havn-sweep``;
    ``None`` adds none (schedule ``flask_havn.sweep`` yourself).
    """
    state = get_state(app).require_db()
    if state.config.delivery != "celery":
        raise HAVNConfigError(f'havn.init_celery() is for HAVN_DELIVERY = "celery"; this app has '
                              f'{state.config.delivery!r}. Set HAVN_DELIVERY = "celery" first')
    bound = _BOUND.get(celery_app)
    if bound is app and isinstance(state.queue, CeleryQueue):
        return state.queue
    if bound is not None:
        raise HAVNConfigError(f"this Celery app already delivers for the Flask app {bound.name!r}; the task names "
                              "are fixed, so give each Flask app its own Celery app")
    name = state.config.queue_name

    # The queue is named on every send (the task's own ``queue`` attribute is deprecated in Celery 5.7).
    @celery_app.task(name=DELIVER_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
                     max_retries=None)
    def deliver(task: Any, payment_id: int) -> None:
        """One delivery attempt of ``payment_id``; retried at its ``next_attempt_at`` while it is ``failed``."""
        with app.app_context():
            delay = run_task(get_state(app), int(payment_id))
        if delay is not None:
            raise task.retry(countdown=delay, max_retries=None, queue=name)

    @celery_app.task(name=SWEEP_TASK, acks_late=True, ignore_result=True)
    def sweep_task() -> int:
        """A new delivery task for every payment due too long without one; how many."""
        with app.app_context():
            state = get_state(app)
            return sweep(state, _queue(state))

    if sweep_every:
        schedule: Dict[str, Any] = dict(celery_app.conf.beat_schedule or {})
        schedule.setdefault(SWEEP_ENTRY, {"task": SWEEP_TASK, "schedule": float(sweep_every),
                                          "options": {"queue": name}})
        celery_app.conf.beat_schedule = schedule
    worker_process_init.connect(_fresh_connections(app), weak=False)
    state.queue = CeleryQueue(celery_app, name, deliver, sweep_task)
    _BOUND[celery_app] = app
    return state.queue


def _fresh_connections(app: Flask) -> Any:
    """A ``worker_process_init`` receiver: drop the database connections a forked worker inherited."""
    def receiver(**kwargs: Any) -> None:
        with app.app_context():
            for engine in get_state(app).require_db().db.engines.values():  # type: ignore[union-attr]
                engine.dispose(close=False)
    return receiver


def _queue(state: "HAVNState") -> CeleryQueue:
    if not isinstance(state.queue, CeleryQueue):  # pragma: no cover - bind() sets it before any task runs
        raise HAVNConfigError('this app does not deliver through Celery: call havn.init_celery(celery_app, app)')
    return state.queue

"""Delivery through RQ (``HAVN_DELIVERY = "rq"``): jobs on the host's Redis, run by ``flask havn rq-worker``.

The queue is ``HAVN_QUEUE_NAME`` on ``HAVN_RQ_URL`` (built at ``init_app``),
or the host's own ``rq.Queue`` passed to ``havn.init_rq(queue)``. A job
carries only the payment id and runs :func:`deliver_job`: the outbox's
attempt, then ``Queue.enqueue_in`` at the row's ``next_attempt_at`` while it
is ``failed`` — so the worker must run RQ's scheduler (``flask havn
rq-worker`` does; a plain ``rq worker`` needs ``--with-scheduler``).

Jobs need the Flask app: ``flask --app yourapp havn rq-worker`` runs an RQ
worker inside it (each job in a fresh app context, in a forked work horse
unless ``--simple``) and enqueues :func:`sweep_job` every ``--sweep-every``
seconds. Instead of that, ``rq cron`` can enqueue ``sweep_job`` on the same
queue (``cron.register(sweep_job, "havn", interval=60)``); any worker of the
queue then runs it.
"""
from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any, List, Optional

from flask import Flask, current_app, has_app_context
from redis import Redis
from rq import Queue, SimpleWorker, Worker

from ..errors import HAVNConfigError
from ..outbox.claims import lease_seconds
from ..outbox.tasks import run_task, sweep
from ..state import get_state

if TYPE_CHECKING:  # pragma: no cover
    from ..config import HAVNConfig
    from ..state import HAVNState

__all__ = ["RQQueue", "bind", "deliver_job", "run_worker", "sweep_job"]

logger = logging.getLogger("flask_havn.delivery")

_NO_APP = ("this RQ job needs the Flask app that recorded the payment: run the worker with "
           "`flask --app yourapp havn rq-worker`")


class RQQueue:
    """The RQ queue a HAVN app delivers through (``get_state(app).queue``)."""

    engine = "rq"

    def __init__(self, queue: Queue, *, job_timeout: int) -> None:
        self.queue = queue
        self.name: str = queue.name
        self._job_timeout = job_timeout

    def __repr__(self) -> str:
        return f"<RQQueue {self.name!r}>"  # never the connection: its URL may hold a password

    @classmethod
    def from_config(cls, config: "HAVNConfig", queue: Optional[Queue] = None) -> "RQQueue":
        """``queue``, or ``HAVN_QUEUE_NAME`` on ``HAVN_RQ_URL``; jobs may run as long as a claim's lease."""
        if queue is None:
            queue = Queue(config.queue_name, connection=Redis.from_url(config.rq_url))
        return cls(queue, job_timeout=int(lease_seconds(config)) + 30)

    def enqueue(self, payment_id: int, delay: float = 0.0) -> None:
        """One :func:`deliver_job` for ``payment_id``, now or in ``delay`` seconds (RQ's scheduler moves it)."""
        options = {"job_timeout": self._job_timeout, "result_ttl": 0,
                   "description": f"HAVN delivery of payment {payment_id}"}
        if delay > 0:
            self.queue.enqueue_in(timedelta(seconds=delay), deliver_job, payment_id, **options)
        else:
            self.queue.enqueue(deliver_job, payment_id, **options)

    def waiting(self) -> int:
        """Jobs waiting in the queue (RQ's scheduled jobs are elsewhere until due)."""
        return int(self.queue.count)

    def enqueue_sweep(self) -> None:
        """One :func:`sweep_job`."""
        self.queue.enqueue(sweep_job, job_timeout=self._job_timeout, result_ttl=0, description="HAVN sweep")


def bind(app: Flask, queue: Queue) -> RQQueue:
    """Deliver ``app``'s payments through the host's own RQ ``queue`` (``havn.init_rq(queue)``)."""
    state = get_state(app).require_db()
    if state.config.delivery != "rq":
        raise HAVNConfigError(f'havn.init_rq() is for HAVN_DELIVERY = "rq"; this app has {state.config.delivery!r}. '
                              'Set HAVN_DELIVERY = "rq" first')
    state.queue = RQQueue.from_config(state.config, queue)
    return state.queue


def deliver_job(payment_id: int) -> None:
    """The RQ job: one delivery attempt of ``payment_id``; re-enqueued for its next attempt while it is ``failed``."""
    app = _app()
    with app.app_context():
        state = get_state(app)
        delay = run_task(state, int(payment_id))
        if delay is not None:
            _queue(state).enqueue(int(payment_id), delay)


def sweep_job() -> int:
    """The RQ job of the periodic sweep: a new task for every payment due too long with none; how many."""
    app = _app()
    with app.app_context():
        state = get_state(app)
        return sweep(state, _queue(state))


def run_worker(app: Flask, *, burst: bool = False, sweep_every: float = 60.0, simple: bool = False,
               logging_level: str = "INFO") -> None:
    """Run an RQ worker (with RQ's scheduler) on ``app``'s queue until it is stopped (``burst``: until it is empty).

    The caller holds ``app``'s app context; every job pushes its own. With
    ``sweep_every`` > 0 (and not ``burst``) a thread enqueues :func:`sweep_job`
    at start and then every ``sweep_every`` seconds; ``burst`` enqueues one
    first. Unless ``simple``, each job runs in a forked work horse, which
    starts with fresh database connections.
    """
    state = get_state(app)
    queue = _queue(state)
    if not simple:
        engines: List[Any] = list(state.require_db().db.engines.values())  # type: ignore[union-attr]
        os.register_at_fork(after_in_child=lambda: [engine.dispose(close=False) for engine in engines])
    worker_class = SimpleWorker if simple else Worker
    worker = worker_class([queue.queue], connection=queue.queue.connection)
    stop = threading.Event()
    if burst:
        queue.enqueue_sweep()
    elif sweep_every > 0:
        threading.Thread(target=_sweeper, args=(queue, sweep_every, stop), name="havn-rq-sweep", daemon=True).start()
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level=logging_level)
    finally:
        stop.set()


def _sweeper(queue: RQQueue, every: float, stop: threading.Event) -> None:
    """Enqueue the sweep job now and every ``every`` seconds until ``stop`` is set (Redis only, no database)."""
    while not stop.is_set():
        try:
            queue.enqueue_sweep()
        except Exception as exc:  # Redis down: the next round tries again
            logger.warning("could not enqueue the HAVN sweep on RQ queue %r (%s: %s); trying again in %gs",
                           queue.name, type(exc).__name__, exc, every)
        stop.wait(every)


def _app() -> Flask:
    if not has_app_context():
        raise HAVNConfigError(_NO_APP)
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _queue(state: "HAVNState") -> RQQueue:
    if not isinstance(state.queue, RQQueue):
        raise HAVNConfigError('this app does not deliver through RQ: set HAVN_DELIVERY = "rq" (and HAVN_RQ_URL, '
                              "HAVN_QUEUE_NAME) in the app the worker runs")
    return state.queue

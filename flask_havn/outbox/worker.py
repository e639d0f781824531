"""Delivery passes: threads claiming due payments one by one, and the loop that repeats passes.

A pass (:func:`deliver_due`) shares one :class:`~flask_havn.outbox.claims.DuePass`
between its threads, so each due payment is attempted at most once per pass
and ``limit`` bounds the whole pass. Each thread runs in its own app context
(its own ``db.session``; the transport gives it its own HTTP session).
"""
from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from flask import current_app

from ..errors import HAVNValidationError
from ..models import DELIVERY_STATES
from .attempt import attempt
from .claims import DuePass, new_worker_id

if TYPE_CHECKING:  # pragma: no cover
    from ..state import HAVNState

__all__ = ["deliver_due", "run_worker", "SUPERSEDED"]

#: Pass-summary key counting attempts whose answer was dropped because the row had moved on.
SUPERSEDED = "superseded"


def deliver_due(state: "HAVNState", *, now: Optional[datetime] = None, concurrency: int = 1,
                limit: Optional[int] = None, on_delivered: Optional[Callable[[Any], None]] = None) -> Dict[str, int]:
    """One pass: deliver every due payment, each at most once; counts by the state each attempt recorded.

    An attempt whose answer was dropped because the row had moved on (see
    :class:`~flask_havn.outbox.attempt.Attempt`) counts under ``"superseded"``.

    ``now`` (naive UTC) replaces the clock when deciding what is due (default:
    the time of each claim); payments recorded during the pass may be picked
    up. ``concurrency`` threads claim rows, each in its own app context.
    ``limit`` caps the deliveries of the whole pass. ``on_delivered(payment)``
    is called after each one (from the worker threads; keep it thread-safe).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise HAVNValidationError("concurrency", "must be a whole number of at least 1")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise HAVNValidationError("limit", "must be a whole number of at least 0, or None")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    due = DuePass(state, now=now, limit=limit)
    lock = threading.Lock()
    counts: Dict[str, int] = {name: 0 for name in DELIVERY_STATES if name != "pending"}
    errors: List[BaseException] = []

    def work() -> None:
        worker_id = new_worker_id()
        with app.app_context():
            while not errors:
                payment_id = due.claim_next(state, worker_id)
                if payment_id is None:
                    return
                done = attempt(state, payment_id, worker_id)
                with lock:
                    key = done.state or SUPERSEDED
                    counts[key] = counts.get(key, 0) + 1
                if on_delivered is not None:
                    on_delivered(done.payment)

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:  # surfaced in the calling thread below
            with lock:
                errors.append(exc)

    if concurrency == 1:
        work()
        return counts
    threads = [threading.Thread(target=guarded, name=f"havn-deliver-{n}", daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return counts


def run_worker(state: "HAVNState", *, interval: float = 5.0, concurrency: int = 1,
               stop: Optional[threading.Event] = None, sleep: Callable[[float], None] = time.sleep,
               on_pass: Optional[Callable[[Dict[str, int]], None]] = None) -> None:
    """Deliver due payments pass after pass, sleeping ``interval`` seconds between idle passes.

    Runs until ``stop`` is set (or Ctrl-C in the CLI).
    """
    stop = stop or threading.Event()
    while not stop.is_set():
        counts = deliver_due(state, concurrency=concurrency)
        if on_pass is not None:
            on_pass(counts)
        if not any(counts.values()) and not stop.is_set():
            sleep(interval)

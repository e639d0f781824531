"""Outbound webhooks: how the sandbox delivers events to the application (no Flask).

Follows webhook-events.md, "Delivery by the sender": each event is an envelope
``{"id", "type", "created_at", "test_mode", "data"}`` POSTed as JSON with the
Standard Webhooks headers. An attempt without a 2xx answer (within ``timeout``)
is retried on :data:`DEFAULT_SCHEDULE` (× ``schedule_factor``) with the same
``webhook-id`` and a fresh timestamp and signature; after the last attempt the
event is ``failed``. Deliveries run on one background thread, never on the
caller's, so an endpoint answers before its events leave.

Nothing queued is dropped silently: :meth:`WebhookDispatcher.flush` delivers
everything queued now (retries too, without waiting for their schedule) and
waits for it, and :meth:`WebhookDispatcher.close` flushes for a bounded time
first (the sandbox closes at interpreter exit, so a short-lived ``flask havn …``
command delivers its events before it ends) and logs how many were left.
"""
from __future__ import annotations

import copy
import heapq
import itertools
import json
import logging
import random
import string
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import requests

from ..signing import new_event_id, webhook_headers
from .settings import hide_password

__all__ = ["WebhookDispatcher", "DEFAULT_SCHEDULE", "new_event_id", "SeededEventIds"]

log = logging.getLogger("flask_havn.sandbox")

#: Delay before each attempt, in seconds: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE: Tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)

_NO_URL = "no webhook URL configured"
#: Seconds :meth:`WebhookDispatcher.close` waits for a worker still in an attempt after the drain ran out.
_STUCK_JOIN = 1.0
_ID_ALPHABET = string.ascii_letters + string.digits + "-_"


class SeededEventIds:
    """Event ids shaped like :func:`new_event_id`, drawn from ``random.Random(seed)``: same seed, same ids."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def __call__(self) -> str:
        with self._lock:
            return "evt_" + "".join(self._random.choice(_ID_ALPHABET) for _ in range(24))

    def reset(self) -> None:
        """Restart the sequence from the seed."""
        with self._lock:
            self._random = random.Random(self.seed)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class WebhookDispatcher:
    """Record events and deliver them, with retries, on one background thread.

    ``url`` may be set at any time (an embedding host learns it late); it is
    read when an event is emitted and again at each attempt. ``session`` is
    used for every POST (default: a private one, closed by :meth:`close`);
    ``clock`` gives epoch seconds for ``created_at``, the log and
    ``webhook-timestamp``.
    """

    def __init__(
        self,
        *,
        secret: str,
        url: Optional[str] = None,
        schedule: Sequence[float] = DEFAULT_SCHEDULE,
        schedule_factor: float = 1.0,
        timeout: float = 15.0,
        session: Optional[requests.Session] = None,
        id_factory: Optional[Callable[[], str]] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not schedule:
            raise ValueError("the delivery schedule needs at least one attempt, e.g. (0,)")
        if any(delay < 0 for delay in schedule) or schedule_factor < 0:
            raise ValueError("delivery delays and schedule_factor must be 0 or more")
        self._secret = secret
        self.url = url
        self.schedule = tuple(float(delay) for delay in schedule)
        self.schedule_factor = float(schedule_factor)
        self.timeout = timeout
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()
        self.id_factory = id_factory or new_event_id
        self.clock = clock
        self._cond = threading.Condition()
        self._queue: List[Tuple[float, int, str, int, int]] = []  # (due, seq, event id, attempt, gen)
        self._seq = itertools.count()
        self._generation = 0
        self._in_flight = 0
        self._events: List[Dict[str, Any]] = []
        self._by_id: Dict[str, Dict[str, Any]] = {}
        self._status: Dict[str, str] = {}
        self._deliveries: List[Dict[str, Any]] = []
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._flushing = 0  # while > 0, every queued attempt is due now

    def __repr__(self) -> str:
        return f"<WebhookDispatcher url={self.url!r} events={len(self._events)}>"

    @property
    def session(self) -> requests.Session:
        """The session every delivery POST goes through."""
        return self._session

    @session.setter
    def session(self, session: requests.Session) -> None:
        """Use the caller's session from now on (e.g. one with an in-process adapter mounted).

        Our private session is closed; the caller's is never closed by :meth:`close`.
        """
        with self._cond:
            old, own = self._session, self._own_session
            self._session, self._own_session = session, False
        if own and old is not session:
            old.close()

    # -- public API ----------------------------------------------------------

    def emit(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        test_mode: bool = False,
        event_id: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Record an event and queue its delivery; return the envelope."""
        envelope: Dict[str, Any] = {
            "id": event_id or self.id_factory(),
            "type": event_type,
            "created_at": _iso(self.clock()),
            "test_mode": bool(test_mode),
            "data": copy.deepcopy(dict(data)),
        }
        json.dumps(envelope)  # refuse data that cannot go on the wire now, not on the worker
        with self._cond:
            if self._closed:
                raise RuntimeError("this WebhookDispatcher is closed; create a new sandbox app to emit events")
            self._events.append(envelope)
            self._by_id[envelope["id"]] = envelope
            if not self.url:
                self._status[envelope["id"]] = "not_delivered"
                self._log(envelope, attempt=0, status_code=None, error=_NO_URL, delivered=False)
            else:
                self._status[envelope["id"]] = "pending"
                self._push(envelope["id"], attempt=1, delay=self.schedule[0])
                self._ensure_worker()
        return copy.deepcopy(envelope)

    def events(self) -> List[Dict[str, Any]]:
        """Every emitted envelope, oldest first (copies)."""
        with self._cond:
            return copy.deepcopy(self._events)

    def status(self, event_id: str) -> Optional[str]:
        """``pending``, ``delivered``, ``failed`` or ``not_delivered`` (``None``: unknown id)."""
        with self._cond:
            return self._status.get(event_id)

    def statuses(self) -> Dict[str, str]:
        """Delivery status of every event, by id."""
        with self._cond:
            return dict(self._status)

    def deliveries(self) -> List[Dict[str, Any]]:
        """The attempt log: ``event_id, type, attempt, at, status_code, error, delivered``.

        ``attempt`` counts from 1; an event emitted with no URL configured gets
        one entry with ``attempt`` 0 (never attempted).
        """
        with self._cond:
            return copy.deepcopy(self._deliveries)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or in flight; ``False`` if ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def pending(self) -> List[str]:
        """Ids of the events not yet delivered nor given up on (queued, in flight or waiting for a retry)."""
        with self._cond:
            return [event_id for event_id, status in self._status.items() if status == "pending"]

    def flush(self, timeout: float = 10.0) -> int:
        """Deliver every queued event now and wait for it; how many are still pending afterwards.

        Queued retries are attempted at once instead of on their schedule, and
        so are the retries of attempts that fail meanwhile, so an event ends
        ``delivered`` or ``failed`` (every attempt used) unless ``timeout``
        seconds run out first. Returns 0 when nothing is left pending.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while (self._queue or self._in_flight) and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            finally:
                self._flushing -= 1
        return len(self.pending())

    def reset(self) -> None:
        """Forget every event, attempt and queued retry (an attempt in flight is discarded)."""
        with self._cond:
            self._generation += 1
            self._queue.clear()
            self._events.clear()
            self._by_id.clear()
            self._status.clear()
            self._deliveries.clear()
            self._cond.notify_all()

    def close(self, drain_timeout: float = 0.0) -> None:
        """Flush for up to ``drain_timeout`` seconds, then stop the worker, join it and close our session.

        Events still pending then are abandoned, and a warning says how many.
        """
        with self._cond:
            if self._closed:
                return
        left = self.flush(drain_timeout) if drain_timeout > 0 else len(self.pending())
        if left:
            url = hide_password(self.url) if self.url else None
            log.warning("%d HAVN sandbox webhook event(s) were not delivered before the sandbox closed and are "
                        "lost (the sandbox keeps events in memory): %s. Check that %s answers 2xx quickly, or "
                        "give HAVN_SANDBOX_DRAIN_TIMEOUT more than %g s", left, ", ".join(self.pending()[:10]),
                        url, drain_timeout)
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            # An idle worker ends at once; one stuck in an attempt (up to ``timeout``) is not waited for:
            # its answer is discarded, and at interpreter exit the daemon thread simply ends.
            thread.join(None if not left else _STUCK_JOIN)
        if self._own_session:
            self._session.close()

    # -- internals -----------------------------------------------------------

    def _push(self, event_id: str, *, attempt: int, delay: float) -> None:
        due = time.monotonic() + delay * self.schedule_factor
        heapq.heappush(self._queue, (due, next(self._seq), event_id, attempt, self._generation))
        self._cond.notify_all()

    def _ensure_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="havn-sandbox-webhooks", daemon=True)
            self._thread.start()

    def _log(self, envelope: Mapping[str, Any], *, attempt: int, status_code: Optional[int],
             error: Optional[str], delivered: bool) -> None:
        self._deliveries.append({
            "event_id": envelope["id"],
            "type": envelope["type"],
            "attempt": attempt,
            "at": _iso(self.clock()),
            "status_code": status_code,
            "error": error,
            "delivered": delivered,
        })

    def _next_job(self) -> Optional[Tuple[Dict[str, Any], int, int, Optional[str]]]:
        """Block until a delivery is due; ``None`` once closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                if self._queue:
                    due, _, event_id, attempt, generation = self._queue[0]
                    wait = 0.0 if self._flushing else due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._queue)
                        envelope = self._by_id.get(event_id)
                        if envelope is None or generation != self._generation:
                            self._cond.notify_all()
                            continue
                        self._in_flight += 1
                        return envelope, attempt, generation, self.url
                    self._cond.wait(wait)
                else:
                    self._cond.wait()

    def _run(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            envelope, attempt, generation, url = job
            try:
                status_code, error = self._attempt(envelope, url)
            except Exception as exc:  # never let the worker die; the attempt just failed
                status_code, error = None, f"{type(exc).__name__}: {exc}"
            with self._cond:
                self._in_flight -= 1
                if generation == self._generation and envelope["id"] in self._by_id:
                    self._record(envelope, attempt, status_code, error)
                self._cond.notify_all()

    def _attempt(self, envelope: Mapping[str, Any], url: Optional[str]) -> Tuple[Optional[int], Optional[str]]:
        if not url:
            return None, _NO_URL
        body = json.dumps(envelope).encode("utf-8")
        headers = webhook_headers([self._secret], envelope["id"], body, timestamp=int(self.clock()))
        try:
            response = self._session.post(url, data=body, headers=headers, timeout=self.timeout,
                                         allow_redirects=False)
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"
        try:
            if 200 <= response.status_code < 300:
                return response.status_code, None
            return response.status_code, f"HTTP {response.status_code}"
        finally:
            response.close()

    def _record(self, envelope: Mapping[str, Any], attempt: int, status_code: Optional[int],
                error: Optional[str]) -> None:
        delivered = error is None
        self._log(envelope, attempt=attempt, status_code=status_code, error=error, delivered=delivered)
        event_id = envelope["id"]
        if delivered:
            self._status[event_id] = "delivered"
        elif error == _NO_URL:
            self._status[event_id] = "not_delivered"
        elif attempt < len(self.schedule):
            self._push(event_id, attempt=attempt + 1, delay=self.schedule[attempt])
        else:
            self._status[event_id] = "failed"
            log.warning("webhook %s (%s) failed after %d attempts", event_id, envelope["type"], attempt)

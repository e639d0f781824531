"""Which payments are due, and taking one for delivery so that no two workers send it at once.

A claim is one short transaction: on PostgreSQL ``SELECT … FOR UPDATE SKIP
LOCKED`` then an UPDATE; elsewhere a conditional ``UPDATE … WHERE id = :id AND
<due>`` whose row count says who won. It sets ``sending``,
``claimed_by``/``claimed_at`` and ``attempts + 1``, and commits. A ``sending``
row whose claim is older than :func:`lease_seconds` (a crashed worker) is due
again.
"""
from __future__ import annotations

import collections
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Deque, Optional, Tuple

import sqlalchemy as sa

from ..config import HAVNConfig
from ..models import utcnow
from ..transport import DEFAULT_MAX_TOTAL_WAIT, max_call_seconds

if TYPE_CHECKING:  # pragma: no cover
    from ..state import HAVNState

__all__ = ["CLAIMABLE", "DuePass", "claim", "count_due", "due", "is_postgres", "lease_seconds", "new_worker_id"]

#: Delivery states a claim may start from (``sending`` only once its lease has run out).
CLAIMABLE = ("pending", "failed")
#: Due ids read at once by a pass that cannot lock rows (SQLite and others).
_BATCH = 100


def new_worker_id() -> str:
    """A claim owner name: host, process, thread and a random suffix (≤ 64 characters)."""
    host = socket.gethostname()[:24]
    return f"{host}:{os.getpid()}:{threading.get_ident() % 100000}:{uuid.uuid4().hex[:8]}"


def lease_seconds(config: HAVNConfig) -> float:
    """How long a ``sending`` claim is honoured before the row counts as abandoned.

    ``HAVN_DELIVERY_LEASE`` when set (checked at start-up to outlast one
    delivery's HTTP call). Else never less than the longest one delivery's
    HTTP call can last: every attempt is bounded by ``HAVN_TIMEOUT`` in total
    (not per socket read) and the waits between retries by the transport's
    ``max_total_wait`` (:func:`flask_havn.transport.max_call_seconds`); ten
    times the timeout at the least, so a live worker is done well within its
    lease.
    """
    if config.delivery_lease is not None:
        return config.delivery_lease
    one_call = max_call_seconds(config.timeout, config.max_retries, DEFAULT_MAX_TOTAL_WAIT)
    return max(10.0 * config.timeout, one_call)


def due(Payment: Any, now: datetime, lease: float) -> Any:
    """SQL condition: the payment is completed and may be claimed at ``now``."""
    return _due(Payment, now, now - timedelta(seconds=lease))


def _due(columns: Any, now: Any, stale: Any) -> Any:
    """:func:`due` over ``columns`` (the model, or its table's ``.c``) with ``now`` and the lease's start."""
    return sa.and_(
        columns.status == "completed",
        sa.or_(
            sa.and_(
                columns.delivery_state.in_(CLAIMABLE),
                sa.or_(columns.next_attempt_at.is_(None), columns.next_attempt_at <= now),
            ),
            sa.and_(
                columns.delivery_state == "sending",
                sa.or_(columns.claimed_at.is_(None), columns.claimed_at <= stale),
            ),
        ),
    )


def is_postgres(state: "HAVNState") -> bool:
    """``True`` when the host's database can lock rows with ``SKIP LOCKED``."""
    return bool(state.session.get_bind().dialect.name == "postgresql")


def _due_now(state: "HAVNState", now: datetime) -> Any:
    Payment = state.models.Payment  # type: ignore[union-attr]
    return due(Payment, now, lease_seconds(state.config))


@lru_cache(maxsize=16)
def _claim_statements(table: sa.Table) -> Tuple[Any, Any]:
    """``(lock, take)`` for ``table``, built once: PostgreSQL's ``SELECT … FOR UPDATE SKIP LOCKED`` of a due
    row, and the conditional UPDATE that takes it. Parameters: ``row_id``, ``now``, ``stale``, ``worker``."""
    c = table.c
    where = (c.id == sa.bindparam("row_id"), _due(c, sa.bindparam("now"), sa.bindparam("stale")))
    lock = sa.select(c.id).where(*where).with_for_update(skip_locked=True)
    take = table.update().where(*where).values(
        delivery_state="sending", claimed_by=sa.bindparam("worker"), claimed_at=sa.bindparam("now"),
        attempts=c.attempts + 1, updated_at=sa.bindparam("now"))
    return lock, take


def claim(state: "HAVNState", payment_id: int, *, worker_id: str, now: Optional[datetime] = None) -> bool:
    """Take ``payment_id`` for delivery if it is due; commit; ``True`` if this caller holds it now."""
    now = now or utcnow()
    session = state.session
    lock, take = _claim_statements(state.models.Payment.__table__)  # type: ignore[union-attr]
    params = {"row_id": payment_id, "now": now, "stale": now - timedelta(seconds=lease_seconds(state.config)),
              "worker": worker_id}
    try:
        if is_postgres(state) and session.execute(lock, params).scalar() is None:
            session.rollback()
            return False
        won = session.execute(take, params).rowcount == 1
        session.commit()
    except Exception:
        session.rollback()
        raise
    return bool(won)


def count_due(state: "HAVNState", *, now: Optional[datetime] = None) -> int:
    """How many payments may be claimed at ``now``."""
    Payment = state.models.Payment  # type: ignore[union-attr]
    query = sa.select(sa.func.count()).select_from(Payment).where(_due_now(state, now or utcnow()))
    count = int(state.session.execute(query).scalar() or 0)
    state.session.rollback()
    return count


class DuePass:
    """One pass over the due payments: each is handed out at most once, at a constant cost per claim.

    Due ids are read :data:`_BATCH` at a time in ascending order behind a
    cursor (the highest id read so far) and handed to the pass's threads one
    by one, each then taken with :func:`claim`. So a payment that failed
    during the pass is not taken again by it, and no query carries a growing
    list of ids already seen. A candidate another process took meanwhile is
    simply skipped. ``limit`` caps the claims of the whole pass, whatever the
    number of threads sharing it. Thread-safe.
    """

    def __init__(self, state: "HAVNState", *, now: Optional[datetime] = None, limit: Optional[int] = None) -> None:
        self._state = state
        self._now = now
        self._limit = limit
        self._lock = threading.Lock()
        self._cursor = 0
        self._buffer: Deque[int] = collections.deque()
        self._claimed = 0

    @property
    def claimed(self) -> int:
        """How many payments this pass has claimed so far."""
        return self._claimed

    def claim_next(self, state: "HAVNState", worker_id: str) -> Optional[int]:
        """Claim the next due payment for ``worker_id`` (through ``state``'s session); its id, or ``None``."""
        while True:
            with self._lock:
                if self._limit is not None and self._claimed >= self._limit:
                    return None
                candidate = self._next_candidate(state)
                if candidate is None:
                    return None
                self._claimed += 1  # reserve a slot of the limit before claiming
            if claim(state, candidate, worker_id=worker_id, now=self._now or utcnow()):
                return candidate
            with self._lock:
                self._claimed -= 1

    def _next_candidate(self, state: "HAVNState") -> Optional[int]:
        """The next due id behind the cursor (reads another batch when the buffer is empty). Locked."""
        if not self._buffer:
            Payment = state.models.Payment  # type: ignore[union-attr]
            ids = list(state.session.execute(
                sa.select(Payment.id).where(Payment.id > self._cursor, _due_now(state, self._now or utcnow()))
                .order_by(Payment.id).limit(_BATCH)).scalars())
            state.session.rollback()  # end the read before writing (SQLite: no lock upgrade races)
            if ids:
                self._cursor = ids[-1]
            self._buffer.extend(ids)
        return self._buffer.popleft() if self._buffer else None

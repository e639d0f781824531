"""Handing payments to the host's task queue once their transaction has committed.

With ``HAVN_DELIVERY = "celery"`` or ``"rq"`` a payment that becomes due gets
one task carrying its id (see :mod:`flask_havn.queues`). Never before the
commit: the worker must find the row, and a payment whose transaction rolls
back must leave nothing behind. So :func:`enqueue_after_commit` watches the
host's ``db.session``:

* an id scheduled while the session holds writes it has not committed waits
  in ``session.info`` and is enqueued by the session's ``after_commit`` hook
  (the outermost commit; releasing a savepoint is not one);
* when that transaction ends any other way (rollback, close) the waiting ids
  are dropped: nothing is enqueued;
* an id scheduled with nothing uncommitted — the services call it right after
  their own commit — is enqueued at once.

"Writes" are the session's flushes and its ORM ``INSERT``/``UPDATE``/``DELETE``
statements, plus objects added or changed but not yet flushed. Enqueueing
never raises into the host: a broker that is down is logged, and the payment,
committed and due, is enqueued again by the queue's periodic sweep
(:func:`flask_havn.outbox.tasks.sweep`).
"""
from __future__ import annotations

import logging
from typing import Any, List, Protocol, Tuple

import sqlalchemy as sa

from ..config import QUEUED

__all__ = ["QUEUED", "TaskQueue", "enqueue_after_commit", "send", "watch_session"]

logger = logging.getLogger("flask_havn.delivery")

#: ``session.info`` key: ``(queue, payment_id)`` pairs waiting for the transaction's commit.
_WAITING = "havn_enqueue_after_commit"
#: ``session.info`` key: ``True`` while the session's transaction holds writes not yet committed.
_WRITES = "havn_uncommitted_writes"


class TaskQueue(Protocol):
    """What the outbox needs of a task queue engine (``flask_havn.queues.celery`` / ``.rq``)."""

    #: The engine's name, ``"celery"`` or ``"rq"``.
    engine: str
    #: The queue the tasks go to (``HAVN_QUEUE_NAME`` unless the host passed its own).
    name: str

    def enqueue(self, payment_id: int, delay: float = 0.0) -> None:
        """Send one delivery task for ``payment_id``, to run in ``delay`` seconds (0: now)."""

    def waiting(self) -> int:
        """How many tasks wait in the queue, ready to start (not those scheduled for later, nor running)."""


def watch_session(session: Any) -> None:
    """Install the commit hooks on the host's ``db.session`` (a scoped session); idempotent.

    Listening on the scoped session listens on its ``sessionmaker``, so every
    session of that ``db`` is watched; the hooks act only on sessions where a
    payment was scheduled.
    """
    for name, hook in _HOOKS:
        if not sa.event.contains(session, name, hook):
            sa.event.listen(session, name, hook)


def enqueue_after_commit(session: Any, queue: "TaskQueue", payment: Any) -> None:
    """Enqueue ``payment``'s task once what the session holds is committed (at once if nothing is pending).

    A payment added but not flushed is flushed first, for its id.
    """
    if sa.inspect(payment).pending:
        session.flush()
    payment_id = int(payment.id)
    if _uncommitted(session):
        session.info.setdefault(_WAITING, []).append((queue, payment_id))
    else:
        send(queue, payment_id)


def send(queue: "TaskQueue", payment_id: int, delay: float = 0.0) -> bool:
    """Enqueue one task; ``False`` (logged, not raised) when the broker refused or is down."""
    try:
        queue.enqueue(payment_id, delay)
    except Exception as exc:  # the broker's own errors vary by engine and transport
        logger.warning("could not enqueue the delivery of payment %s on %s queue %r (%s: %s); it is committed and "
                       "due: the periodic sweep enqueues it again once the broker answers", payment_id, queue.engine,
                       queue.name, type(exc).__name__, exc)
        return False
    return True


def _uncommitted(session: Any) -> bool:
    return bool(session.info.get(_WRITES) or session.new or session.dirty or session.deleted)


def _flushed(session: Any, flush_context: Any) -> None:
    session.info[_WRITES] = True


def _executed(orm_execute_state: Any) -> None:
    if orm_execute_state.is_insert or orm_execute_state.is_update or orm_execute_state.is_delete:
        orm_execute_state.session.info[_WRITES] = True


def _committed(session: Any) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the outer transaction may still roll back
    session.info.pop(_WRITES, None)
    waiting: List[Tuple["TaskQueue", int]] = session.info.pop(_WAITING, [])
    for queue, payment_id in waiting:
        send(queue, payment_id)


def _ended(session: Any, transaction: Any) -> None:
    if transaction.parent is not None:
        return
    session.info.pop(_WRITES, None)
    dropped = session.info.pop(_WAITING, None)
    if dropped:
        logger.info("the transaction ended without a commit: %d payment(s) scheduled in it are not enqueued",
                    len(dropped))


_HOOKS = (("after_flush", _flushed), ("do_orm_execute", _executed), ("after_commit", _committed),
          ("after_transaction_end", _ended))

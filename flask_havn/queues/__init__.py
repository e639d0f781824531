"""Delivery through the host's task queue: Celery (:mod:`.celery`) or RQ (:mod:`.rq`).

``HAVN_DELIVERY = "celery"`` or ``"rq"``: after the commit that makes a
payment due, one task carrying its id goes to the host's queue
(:mod:`flask_havn.outbox.schedule`), and a worker of that queue runs the
outbox's own attempt and its retries (:mod:`flask_havn.outbox.tasks`). The
engines are optional extras; their modules import them at the top, so they
are imported here only when an app asks for them, and a missing extra is a
:class:`~flask_havn.errors.HAVNConfigError` naming what to install.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import QUEUED
from ..errors import HAVNConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..state import HAVNState

__all__ = ["QUEUED", "attach", "missing_extra"]


def missing_extra(engine: str, error: ImportError) -> HAVNConfigError:
    """The error for an engine whose extra is not installed: what is missing and the pip line."""
    return HAVNConfigError(
        f'HAVN_DELIVERY = "{engine}" needs the {engine} extra, which is not installed ({error.name or error} '
        f'is missing): pip install "flask-havn[{engine}]"')


def attach(state: "HAVNState") -> None:
    """Prepare ``state`` for its queue engine at ``init_app``: the extra is there, the commit hooks watch
    ``db.session``, and for RQ the queue named by ``HAVN_QUEUE_NAME`` on ``HAVN_RQ_URL`` is built (no
    connection is opened yet). A Celery app is bound later, by ``havn.init_celery(celery_app, app)``.
    """
    engine = state.config.delivery
    if engine not in QUEUED:
        return
    try:
        if engine == "rq":
            from .rq import RQQueue

            if state.queue is None:
                state.queue = RQQueue.from_config(state.config)
        else:
            from . import celery  # noqa: F401  (the extra is there; binding comes with init_celery)
    except ImportError as exc:
        raise missing_extra(engine, exc) from None
    from ..outbox.schedule import watch_session

    watch_session(state.require_db().session)

"""A host app for the task-queue tests, and the one their worker PROCESSES load.

The tests build it in-process with :func:`build` (the web side, which records
payments and enqueues their tasks) and start real workers on the same
settings, passed as JSON in ``QUEUE_HOST_CONFIG``::

    celery -A _queue_host:celery_app worker -Q <HAVN_QUEUE_NAME> …
    flask --app _queue_host:app havn rq-worker …

``QUEUE_HOST_CELERY`` is a JSON object of ``broker`` (URL) and ``sweep_every`` (seconds).
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, Tuple

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN


def build(config: Mapping[str, Any], *, name: str = "queue_host") -> Tuple[Flask, SQLAlchemy, HAVN]:
    """A host app on ``config`` (``app.config`` keys) with its db and the extension, without routes."""
    app = Flask(name)
    app.config.update(config)
    db = SQLAlchemy(app)
    havn = HAVN(app, db=db, routes=False)
    return app, db, havn


def celery_for(app: Flask, havn: HAVN, broker: str, *, sweep_every: Optional[float]) -> Any:
    """A Celery app on ``broker`` delivering ``app``'s payments (what a host's app factory does)."""
    from celery import Celery

    celery_app = Celery(app.name, broker=broker, set_as_current=False)
    celery_app.conf.update(
        # acks_late with prefetching one message per process: a killed worker holds as little as possible.
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_ignore_result=True,
    )
    havn.init_celery(celery_app, app, sweep_every=sweep_every)
    return celery_app


if "QUEUE_HOST_CONFIG" in os.environ:
    app, db, havn = build(json.loads(os.environ["QUEUE_HOST_CONFIG"]))
    if "QUEUE_HOST_CELERY" in os.environ:
        _celery = json.loads(os.environ["QUEUE_HOST_CELERY"])
        celery_app = celery_for(app, havn, _celery["broker"], sweep_every=_celery["sweep_every"])

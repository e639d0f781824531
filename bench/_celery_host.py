"""The host app the queue benchmark's Celery worker loads: ``celery -A bench._celery_host:celery_app worker``.

Its settings come from the benchmark as JSON in ``BENCH_HOST_CONFIG`` (the
Flask app's config) and ``BENCH_BROKER_URL``.
"""
from __future__ import annotations

import json
import os

from celery import Celery
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN

app = Flask("bench_queue_host")
app.config.update(json.loads(os.environ["BENCH_HOST_CONFIG"]))
havn = HAVN(app, db=SQLAlchemy(app), routes=False)
celery_app = Celery("bench_queue_host", broker=os.environ["BENCH_BROKER_URL"], set_as_current=False)
celery_app.conf.update(worker_prefetch_multiplier=4, broker_connection_retry_on_startup=True,
                       worker_hijack_root_logger=False)
havn.init_celery(celery_app, app, sweep_every=None)

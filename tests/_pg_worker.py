"""A delivery worker PROCESS for the PostgreSQL concurrency test.

Builds a host app on the database and sandbox named by the environment, waits
for one line on stdin (so the test can start every worker at the same moment),
runs one delivery pass and prints its counts as JSON.
"""
from __future__ import annotations

import json
import os
import sys

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN
from flask_havn import delivery
from flask_havn.config import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET


def main() -> None:
    app = Flask("pg_worker")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ["HAVN_TEST_POSTGRES_URL"],
        HAVN_BASE_URL=os.environ["WORKER_SANDBOX_URL"],
        HAVN_API_KEY=SANDBOX_API_KEY,
        HAVN_WEBHOOK_SECRET=SANDBOX_WEBHOOK_SECRET,
        HAVN_DELIVERY="worker",
        HAVN_MAX_RETRIES=0,
    )
    db = SQLAlchemy(app)
    HAVN(app, db=db, routes=False)
    print("ready", flush=True)
    sys.stdin.readline()  # the starting gun
    with app.app_context():
        counts = delivery.deliver_due(concurrency=int(os.environ.get("WORKER_THREADS", "1")))
        db.engine.dispose()
    app.extensions["havn"].close()
    print(json.dumps(counts))


if __name__ == "__main__":
    main()

"""A host on the embedded sandbox for `flask havn deliver` run as a real process (test_sandbox_exit.py).

Its database and the sandbox's state file come from the environment, so the test
process and this command share both, like `make demo` and a CLI command do.
"""
from __future__ import annotations

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=os.environ["HOST_DATABASE_URI"], HAVN_SANDBOX=True,
                      HAVN_DELIVERY="worker", HAVN_MAX_RETRIES=0)
    db = SQLAlchemy(app)
    HAVN(app, db=db)
    return app

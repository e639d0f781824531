"""A host app for the sandbox command's test: real HAVN credentials of its own."""
from __future__ import annotations

from flask import Flask

from flask_havn import HAVN


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(HAVN_API_KEY="host-own-key", HAVN_WEBHOOK_SECRET="host-own-secret")
    HAVN(app)
    return app

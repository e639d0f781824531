"""ShopEasy: a small SaaS that shows flask_havn at work (``flask --app example_app run``).

With no ``HAVN_API_KEY`` in the environment it runs against the embedded HAVN
sandbox; with real keys (and ``HAVN_BASE_URL``) it talks to HAVN unchanged.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN

db = SQLAlchemy()
havn = HAVN()


def create_app(config: Optional[Mapping[str, Any]] = None) -> Flask:
    """Build ShopEasy; ``config`` overrides the defaults (tests pass their own)."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(
        SECRET_KEY=os.environ.get("SHOPEASY_SECRET_KEY", "shopeasy-dev-only"),
        SQLALCHEMY_DATABASE_URI="sqlite:///" + os.path.join(app.instance_path, "shopeasy.sqlite"),
    )
    if not os.environ.get("HAVN_API_KEY"):
        app.config["HAVN_SANDBOX"] = True
    app.config.update(config or {})
    db.init_app(app)
    havn.init_app(app, db=db)

    @app.get("/")
    def index() -> Any:
        settings = havn.config
        return jsonify(
            app="ShopEasy",
            havn={"sandbox": settings.sandbox, "base_url": settings.base_url, "test_mode": settings.test_mode},
        )

    with app.app_context():
        db.create_all()
    return app

"""The webhook endpoint is exempt from Flask-WTF's CSRFProtect, whichever is set up first."""
from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from flask_havn import HAVN

from _webhook_helpers import CONFIG, envelope, post


@pytest.fixture
def build(tmp_path: Any) -> Any:
    made = []

    def factory(csrf_first: bool) -> Flask:
        app = Flask(f"csrf{len(made)}")
        app.config.update(CONFIG, SECRET_KEY="dev", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/c{len(made)}.db")
        db = SQLAlchemy(app)
        if csrf_first:
            CSRFProtect(app)
            HAVN(app, db=db)
        else:
            HAVN(app, db=db)
            CSRFProtect(app)

        @app.post("/form")
        def form() -> str:
            return "ok"

        with app.app_context():
            db.create_all()
        made.append((app, db))
        return app

    yield factory
    for app, db in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        app.extensions["havn"].close()


@pytest.mark.parametrize("csrf_first", [True, False], ids=["csrf-before-havn", "csrf-after-havn"])
def test_webhook_endpoint_is_exempt_but_other_posts_are_protected(build: Any, csrf_first: bool) -> None:
    app = build(csrf_first)
    client = app.test_client()
    assert client.post("/form").status_code == 400  # CSRFProtect is really on
    assert post(client, envelope()).status_code == 200
    assert post(client, envelope(event_id="evt_second")).status_code == 200
    assert client.post("/form").status_code == 400


def test_csrf_disabled_apps_still_work(build: Any) -> None:
    app = build(False)
    app.config["WTF_CSRF_ENABLED"] = False
    assert post(app.test_client(), envelope()).status_code == 200

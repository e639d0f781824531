"""ShopEasy: a small SaaS that shows flask_havn at work (``flask --app example_app run``).

With no ``HAVN_API_KEY`` in the environment it runs against the embedded HAVN
sandbox (and says so on every page); with real keys (and ``HAVN_BASE_URL``)
it talks to HAVN unchanged. Its pages call flask_havn's services
(``havn.create_project``, ``havn.sync_owner``, ``havn.record_payment``…) the way
a host's own views would; its signal receivers (receivers.py) fill its own
activity table.

Currency: by default HAVN converts non-USD payments (``HAVN_CURRENCY_CONVERSION
= "server"``). To see ShopEasy convert them itself and HAVN check the result,
start it with ``HAVN_CURRENCY_CONVERSION=client HAVN_EXCHANGE_RATES='IDR=0.0000633,
EUR=1.08' flask --app example_app run`` (or pass those keys to ``create_app``);
then move a rate on the /sandbox page to watch HAVN refuse a conversion.
"""
from __future__ import annotations

import os
import secrets
from typing import Any, Dict, Mapping, Optional

from flask import Flask, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError  # type: ignore[import-untyped]  # Flask-WTF ships no py.typed
from werkzeug.exceptions import HTTPException

from .extensions import csrf, db, havn
from .money import format_money
from .receivers import connect_receivers

__all__ = ["create_app", "db", "havn"]

#: ShopEasy's own pages (flask_havn's JSON routes under /havn answer errors as JSON, not as a page).
_PAGES = ("projects", "payments", "network", "activity", "sandbox_tools", "operator", "referrals")


def create_app(config: Optional[Mapping[str, Any]] = None, *, instance_path: Optional[str] = None) -> Flask:
    """Build ShopEasy; ``config`` overrides the defaults, ``instance_path`` moves its SQLite file (tests)."""
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(
        # Signs the session (and so the CSRF token); a fresh one per start unless you set yours.
        SECRET_KEY=os.environ.get("SHOPEASY_SECRET_KEY") or secrets.token_hex(32),
        SQLALCHEMY_DATABASE_URI="sqlite:///" + os.path.join(app.instance_path, "shopeasy.sqlite"),
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    if not os.environ.get("HAVN_API_KEY"):
        app.config["HAVN_SANDBOX"] = True
    # Referral links: ?ref=&vc= is kept in a signed cookie until sign-up (views/referrals.py).
    app.config.update(HAVN_CAPTURE_REFERRALS=True, HAVN_SANDBOX_PUBLIC_REDIRECT_SLUG="shopeasy")
    app.config.update(config or {})

    db.init_app(app)
    # ShopEasy's pages call havn's services directly. Its @havn.authorize lets only a signed-in
    # operator (views/operator.py) through, to the console at /admin and to the JSON routes under /havn;
    # everyone else gets 403 there, as they should without a login.
    havn.init_app(app, db=db)
    # Every POST needs the form's csrf_token(); flask_havn exempts its webhook endpoint (HAVN signs
    # its events instead), whichever of the two extensions is set up first.
    csrf.init_app(app)
    connect_receivers(app)
    _register_pages(app)
    _mount_console(app)

    with app.app_context():
        from . import models  # noqa: F401  (declares ShopEasy's table before create_all)

        db.create_all()
    return app


def _mount_console(app: Flask) -> None:
    """The HAVN operator console at /admin (Flask-Admin, the ``admin`` extra; Python 3.10+)."""
    try:
        import flask_admin  # noqa: F401
    except ImportError:  # pragma: no cover - the example and test extras install it on 3.10+
        return
    havn.init_admin(app=app, url="/admin", name="ShopEasy admin")


def _register_pages(app: Flask) -> None:
    from .views import activity, network, operator, payments, projects, referrals, sandbox

    havn.authorize(operator.is_operator)
    for blueprint in (projects.bp, payments.bp, network.bp, activity.bp, sandbox.bp, operator.bp, referrals.bp):
        app.register_blueprint(blueprint)
    app.add_template_filter(format_money, "money")

    @app.context_processor
    def _havn_settings() -> Dict[str, Any]:
        settings = havn.config
        return {"havn_console": "havn_dashboard" in app.blueprints, "havn_sandbox": settings.sandbox, "havn_test_mode": settings.test_mode,
                "havn_base_url": settings.base_url, "havn_conversion": settings.currency_conversion}

    @app.context_processor
    def _page_marker() -> Dict[str, str]:
        # <body data-page="projects.show" data-render="…">: which page this is and which rendering of
        # it, so a script (or the browser test) tells a freshly loaded page from the one it replaced.
        return {"render_id": secrets.token_hex(8)}

    @app.get("/")
    def index() -> Any:
        return redirect(url_for("projects.index"))

    @app.errorhandler(HTTPException)
    def _error_page(exc: HTTPException) -> Any:
        # flask_havn's JSON routes answer JSON; ShopEasy's pages answer a page.
        prefix = havn.config.url_prefix
        if request.blueprint not in _PAGES and (request.blueprint is not None or
                                                (prefix and request.path.startswith(prefix + "/"))):
            return exc
        description = exc.description
        if isinstance(exc, CSRFError):  # Flask-WTF's reason, then what to do about it
            description = f"{description} The form expired or did not come from ShopEasy; reload the page and " \
                          "submit it again."
        return render_template("error.html", code=exc.code, name=exc.name, description=description), exc.code

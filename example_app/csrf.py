"""A minimal CSRF guard for ShopEasy's own forms (a real app would use Flask-WTF).

Every form carries ``csrf_token()``; every POST to the app's pages must send
it back. flask_havn's webhook endpoint is not a page of ours and is not
checked (its signature is its authentication).
"""
from __future__ import annotations

import hmac
import secrets
from typing import Container

from flask import Flask, abort, request, session

__all__ = ["init_csrf", "csrf_token"]

_SESSION_KEY = "_shopeasy_csrf"
_FIELD = "csrf_token"


def csrf_token() -> str:
    """This session's token (created on first use)."""
    token = session.get(_SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[_SESSION_KEY] = token
    return token


def init_csrf(app: Flask, *, protected_blueprints: Container[str]) -> None:
    """Check the token on every unsafe request to ``protected_blueprints``."""
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def _check_csrf() -> None:
        if request.method in ("GET", "HEAD", "OPTIONS") or request.blueprint not in protected_blueprints:
            return
        sent = request.form.get(_FIELD, "")
        expected = session.get(_SESSION_KEY, "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            abort(400, description="The form expired or did not come from ShopEasy; reload the page and "
                                   "submit it again.")

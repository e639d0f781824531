"""ShopEasy's operator sign-in: one shared password from config, remembered in the signed session.

ShopEasy has no user accounts, so the simplest honest gate for the HAVN
operator console (mounted at ``/admin``) is a password the operator team
shares: ``SHOPEASY_OPERATOR_PASSWORD`` (config or environment). Without one,
sign-in is off and the console stays closed (403) — nothing is open by default.
Signing in sets ``session["shopeasy_operator"]``; :func:`is_operator` is
ShopEasy's ``@havn.authorize`` callback, so it opens flask_havn's JSON routes
under ``/havn`` to the operator too, and to nobody else.
"""
from __future__ import annotations

import hmac
import os
from typing import Any, Optional

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for

__all__ = ["bp", "is_operator", "operator_password", "SESSION_KEY"]

bp = Blueprint("operator", __name__)

#: The session flag a successful sign-in sets (the session is signed with ``SECRET_KEY``).
SESSION_KEY = "shopeasy_operator"


def operator_password() -> Optional[str]:
    """The operators' shared password (``SHOPEASY_OPERATOR_PASSWORD`` in config, else the environment)."""
    return current_app.config.get("SHOPEASY_OPERATOR_PASSWORD") or os.environ.get("SHOPEASY_OPERATOR_PASSWORD") or None


def is_operator() -> bool:
    """``@havn.authorize``: the request comes from a signed-in operator."""
    return session.get(SESSION_KEY) is True


@bp.get("/operator/sign-in")
def sign_in_form() -> Any:
    """The sign-in form (or why sign-in is off)."""
    return render_template("operator.html", enabled=operator_password() is not None, signed_in=is_operator())


@bp.post("/operator/sign-in")
def sign_in() -> Any:
    """Check the password (constant-time); on success remember the operator and open the console."""
    expected = operator_password()
    given = request.form.get("password", "")
    if expected is None or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        flash("That is not the operator password." if expected else "Operator sign-in is off: set "
              "SHOPEASY_OPERATOR_PASSWORD.", "error")
        return render_template("operator.html", enabled=expected is not None, signed_in=False), 403
    session.clear()  # a fresh session on a change of privilege
    session[SESSION_KEY] = True
    return redirect(url_for("havn_dashboard.index"))


@bp.post("/operator/sign-out")
def sign_out() -> Any:
    """Forget the operator."""
    session.pop(SESSION_KEY, None)
    flash("Signed out.", "success")
    return redirect(url_for("projects.index"))

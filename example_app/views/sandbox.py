"""Sandbox knobs (only with the embedded sandbox): see and move its exchange rates.

Moving HAVN's rate away from the one a host converts with is how a conversion
failure is provoked on purpose; with real HAVN this page does not exist.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from flask_havn.extension import get_state

from ..money import CURRENCIES

__all__ = ["bp", "sandbox_backend"]

bp = Blueprint("sandbox_tools", __name__)


def sandbox_backend() -> Any:
    """The embedded sandbox's backend (404 when ShopEasy talks to a real HAVN)."""
    sandbox_app = get_state().sandbox_app
    if sandbox_app is None:
        abort(404, description="ShopEasy talks to a real HAVN: there is no sandbox to adjust.")
    from flask_havn.sandbox.app import get_state as sandbox_state

    return sandbox_state(sandbox_app).backend


def _render(rates: Mapping[str, Any], form: Dict[str, str], errors: Dict[str, str], status: int = 200) -> Any:
    shown = {code: format(rates[code], "f") for code in CURRENCIES if code in rates}
    return render_template("sandbox.html", rates=shown, currencies=CURRENCIES, form=form, errors=errors), status


@bp.get("/sandbox")
def index() -> Any:
    """The sandbox's exchange rates (USD per one major unit) and the form to change one."""
    return _render(sandbox_backend().rates, {"currency": "IDR", "rate": ""}, {})


@bp.post("/sandbox/rates")
def set_rate() -> Any:
    """Move one of the sandbox's exchange rates (what HAVN converts with)."""
    from flask_havn.sandbox.errors import SandboxError

    backend = sandbox_backend()
    form = {"currency": request.form.get("currency", "").strip().upper(), "rate": request.form.get("rate", "").strip()}
    if form["currency"] not in CURRENCIES or form["currency"] == "USD":
        return _render(backend.rates, form, {"currency": "Choose a currency other than USD."}, 400)
    try:
        backend.set_rates({form["currency"]: form["rate"]})
    except SandboxError as exc:
        return _render(backend.rates, form, {"rate": exc.message}, 400)
    flash(f"The sandbox now converts 1 {form['currency']} at {form['rate']} USD.", "success")
    return redirect(url_for(".index"))

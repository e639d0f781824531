"""Referral links: the "share your link" box, the sign-up page a link lands on, the first-payment discount.

A project's owner shares HAVN's public link (``…/r/shopeasy?ref=<its code>&vc=<voucher>``).
HAVN sends the visitor to ShopEasy's sign-up page with ``ref`` and ``vc``;
flask_havn keeps them in a signed cookie (``HAVN_CAPTURE_REFERRALS``); the
sign-up creates the visitor's project and ``havn.attach_referral`` gives it
the captured upline and remembers the voucher, which the first checkout
offers and the first payment sends. With the embedded sandbox, the link goes
through ShopEasy (``/havn-link/r/<slug>``) to the in-process sandbox, which a
browser cannot reach; with real HAVN it is HAVN's own URL.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from flask_havn import HAVNError, HAVNValidationError, current_referral
from flask_havn.extension import get_state

from ..extensions import db, havn
from ..forms import field_errors

__all__ = ["bp", "first_payment_offer", "voucher_discount", "WELCOME_SUFFIX"]

bp = Blueprint("referrals", __name__)

#: The sandbox voucher the share box creates for a project's link: ``<referral code>-WELCOME``.
WELCOME_SUFFIX = "-WELCOME"
#: HAVN's public link base when ShopEasy talks to a real HAVN (``SHOPEASY_HAVN_LINK_BASE`` overrides it).
HAVN_LINK_BASE = "https://havn.com"


def _slug() -> str:
    return str(current_app.config.get("HAVN_SANDBOX_PUBLIC_REDIRECT_SLUG") or "shopeasy")


def _sandbox() -> Optional[Any]:
    """The embedded sandbox's state (``None`` with a real HAVN)."""
    sandbox_app = get_state().sandbox_app
    if sandbox_app is None:
        return None
    from flask_havn.sandbox.app import get_state as sandbox_state

    return sandbox_state(sandbox_app)


def _welcome_voucher(project: Any) -> Optional[str]:
    """The project's welcome voucher when HAVN knows it and it can be used, else ``None``."""
    code = project.referral_code + WELCOME_SUFFIX
    try:
        return code if havn.validate_voucher(code) else None
    except HAVNError:
        return None


def share_box(project: Any) -> Dict[str, Any]:
    """What the project page's "share your link" box shows: the link, its voucher, whether one can be made."""
    if not project.referral_code:
        return {"link": None}
    # The welcome voucher is the sandbox's (made by the button below); a real HAVN's vouchers come from its dashboard.
    voucher = _welcome_voucher(project) if _sandbox() is not None else None
    params = {"ref": project.referral_code, **({"vc": voucher} if voucher else {})}
    if _sandbox() is not None:
        link = url_for("referrals.public_link", slug=_slug(), _external=True, **params)
    else:
        base = current_app.config.get("SHOPEASY_HAVN_LINK_BASE", HAVN_LINK_BASE).rstrip("/")
        link = base + url_for("referrals.public_link", slug=_slug(), **params).replace("/havn-link", "", 1)
    return {"link": link, "voucher": voucher, "can_make_voucher": voucher is None and _sandbox() is not None}


@bp.app_context_processor
def _share_box_helper() -> Dict[str, Any]:
    return {"share_box": share_box}


@bp.post("/projects/<int:project_id>/welcome-voucher")
def make_voucher(project_id: int) -> Any:
    """Sandbox only: create the 20%-off welcome voucher the project's link carries (HAVN admins do this)."""
    from flask_havn.sandbox.errors import SandboxError

    sandbox = _sandbox()
    project = db.session.get(havn.models.Project, project_id)
    if sandbox is None or project is None or not project.referral_code:
        abort(404, description="Vouchers are made in HAVN's dashboard; this page exists only with the sandbox.")
    try:
        sandbox.backend.seed({"vouchers": [{
            "associate_code": project.referral_code, "code": project.referral_code + WELCOME_SUFFIX,
            "type": "DISCOUNT_PERCENTAGE", "value": 2000, "usage_limit": 100,
            "description": f"Welcome to ShopEasy, from {project.name}"}]})
    except SandboxError as exc:
        flash(f"The sandbox made no voucher: {exc.message}", "error")
    else:
        flash("Your link now carries a 20% welcome voucher.", "success")
    return redirect(url_for("projects.show", project_id=project_id))


@bp.get("/havn-link/r/<slug>")
def public_link(slug: str) -> Any:
    """The embedded sandbox's public link, reached through ShopEasy (a browser cannot reach it in-process).

    The sandbox is told ShopEasy's sign-up page as ``public_auth_redirect_url``
    (what a HAVN admin configures), answers as HAVN would, and its 302 is
    followed only to that page: never anywhere else.
    """
    sandbox = _sandbox()
    if sandbox is None:
        abort(404, description="ShopEasy talks to a real HAVN: share HAVN's own link.")
    signup = url_for(".signup", _external=True)
    if sandbox.public_auth_redirect_url is None:
        sandbox.public_auth_redirect_url = signup
    answer = sandbox_app_client().get(f"/r/{slug}", query_string=request.args.to_dict(flat=False))
    location = answer.headers.get("Location", "")
    if answer.status_code == 302 and location.startswith(sandbox.public_auth_redirect_url):
        return redirect(location, code=302)
    message = (answer.get_json(silent=True) or {}).get("message", "HAVN refused the link")
    abort(answer.status_code if answer.status_code >= 400 else 502, description=f"HAVN: {message}")


def sandbox_app_client() -> Any:
    """A test client of the embedded sandbox app (in-process requests, as the extension's own)."""
    return get_state().sandbox_app.test_client()  # type: ignore[union-attr]


@bp.get("/signup")
def signup() -> Any:
    """Where a referral link lands: who invited the visitor, and the sign-up form."""
    return _render_signup({"project_name": "", "email": "", "name": ""}, {})


def _render_signup(form: Dict[str, str], errors: Dict[str, str], status: int = 200) -> Any:
    referral = current_referral._get_current_object()  # type: ignore[attr-defined]
    inviter = None
    if referral is not None:
        Project = havn.models.Project
        inviter = db.session.execute(db.select(Project).where(Project.referral_code == referral.code)).scalar_one_or_none()
    return render_template("signup.html", referral=referral, inviter=inviter, form=form, errors=errors), status


@bp.post("/signup")
def create_account() -> Any:
    """Create the visitor's project under the captured upline (if HAVN knows it) and sync its owner."""
    form = {key: request.form.get(key, "").strip() for key in ("project_name", "email", "name")}
    try:
        project = havn.create_project(form["project_name"])
    except HAVNValidationError as exc:
        return _render_signup(form, field_errors(exc, {"name": "project_name"}), 400)
    try:
        attached = havn.attach_referral(project)
    except HAVNValidationError as exc:
        havn.referrals.forget()
        flash(f"The referral link did not count: {exc.reason}", "error")
    except HAVNError as exc:
        db.session.rollback()
        flash(f"HAVN could not check the referral link now ({exc.message}); the project has no referrer.", "error")
    else:
        if attached:
            flash(f"Welcome! You were referred by {attached.referral.code}.", "success")  # type: ignore[union-attr]
    try:
        havn.sync_owner(project, form["email"], form["name"])
    except HAVNError as exc:
        db.session.rollback()
        flash(f"Sync the owner on the project page: {exc.message}", "error")
    return redirect(url_for("projects.show", project_id=project.id))


# -- the first checkout -------------------------------------------------------------------------


def first_payment_offer(project: Any) -> Optional[str]:
    """The referral voucher the project's first payment may use (``None`` once it paid or without one)."""
    if project is None or not project.referral_voucher_code or project.referral_voucher_used_at is not None:
        return None
    if project.payments.first() is not None:
        return None
    return str(project.referral_voucher_code)


def voucher_discount(code: str, amount: int, currency: str) -> Optional[Tuple[int, str]]:
    """``(discount in minor units, "20% off")`` of a HAVN voucher in the voucher's own terms, else ``None``.

    HAVN's validate answers by status alone, so the voucher's value comes
    from the voucher list (percent in basis points; a fixed discount in the
    voucher's currency, used only when it is the payment's).
    """
    try:
        page = havn.client.vouchers.list(search=code, per_page=5)
    except HAVNError:
        return None
    voucher = next((v for v in page.vouchers if (v.code or "").upper() == code.upper()), None)
    if voucher is None or voucher.value is None:
        return None
    if voucher.type == "DISCOUNT_PERCENTAGE":
        percent = int(voucher.value) / 100
        return min(amount - 1, amount * int(voucher.value) // 10000), f"{percent:g}% off"
    if voucher.type == "DISCOUNT_FIXED" and (voucher.currency or "USD") == currency:
        return min(amount - 1, int(voucher.value)), "a fixed discount"
    return None

"""Checkout (a payment is charged, marked completed and handed to flask_havn) and the payments pages."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from flask_havn import HAVNConfigError, HAVNError, HAVNValidationError

from ..extensions import db, havn
from ..forms import field_errors, get_row
from ..money import CURRENCIES, parse_amount
from .referrals import first_payment_offer, voucher_discount

__all__ = ["bp", "RETRYABLE"]

bp = Blueprint("payments", __name__)

#: Delivery states a person can retry from the payments page.
RETRYABLE = ("failed", "dead")
#: Service field names → the checkout form's.
_ALIASES = {"project": "project_id"}


def _projects() -> Any:
    Project = havn.models.Project
    return db.session.execute(db.select(Project).order_by(Project.id)).scalars().all()


def _owner_email(project: Any) -> str:
    owner = next((m for m in project.members if m.role == "owner"), None) if project is not None else None
    return owner.email if owner is not None else ""


def _render_checkout(form: Dict[str, str], errors: Dict[str, str], status: int = 200,
                     offer: Optional[Dict[str, str]] = None) -> Any:
    return render_template("checkout.html", projects=_projects(), currencies=CURRENCIES, form=form,
                           errors=errors, offer=offer), status


@bp.get("/checkout")
def checkout() -> Any:
    """The checkout form (``?project=ID`` chooses who pays)."""
    project = get_row(db.session, havn.models.Project, request.args.get("project", ""))
    # A project that came through a referral link gets its voucher on the first payment (views/referrals.py).
    voucher = first_payment_offer(project)
    offer = None
    if voucher is not None:
        found = voucher_discount(voucher, 10000, "USD")
        offer = {"code": voucher, "label": found[1] if found else "a discount"}
    form = {"project_id": str(project.id) if project else "", "amount": "", "currency": "USD",
            "voucher_code": voucher or "", "customer_email": _owner_email(project)}
    return _render_checkout(form, {}, offer=offer)


def _check_voucher(code: str, amount: int, currency: str, project: Any) -> Optional[str]:
    """Why a HAVN voucher cannot be used (``None``: it can). Local codes are ShopEasy's own business."""
    if not code.upper().startswith("HAVN-"):
        return None
    if not project.upline_referral_code:
        return "HAVN vouchers work only for projects referred by another project (they need a referral code)."
    try:
        answer = havn.client.vouchers.validate(code, amount, currency)
    except HAVNValidationError as exc:
        return exc.reason
    except HAVNError as exc:
        return f"HAVN could not check the voucher now ({exc.message}); try again or pay without it."
    return None if answer.valid else answer.reason


def _payment_fields(form: Dict[str, str]) -> Dict[str, Any]:
    """The checkout form as keyword arguments of ``havn.payments.record`` (and ``validate``)."""
    return {"customer_email": form["customer_email"], "status": "pending",
            "voucher_code": form["voucher_code"] or None, "transaction_type": "SUBSCRIPTION"}


def _form_errors(problems: Dict[str, str]) -> Dict[str, str]:
    """``havn.payments.validate``'s problems named as the checkout form's fields."""
    return {_ALIASES.get(field, field): message for field, message in problems.items()}


@bp.post("/checkout")
def pay() -> Any:
    """Charge (simulated), mark the payment completed and hand it to flask_havn, which delivers it to HAVN."""
    form = {key: request.form.get(key, "").strip()
            for key in ("project_id", "amount", "currency", "voucher_code", "customer_email")}
    errors: Dict[str, str] = {}
    project = get_row(db.session, havn.models.Project, form["project_id"])
    if project is None:
        errors["project_id"] = "Choose the project that pays."
    currency = form["currency"].upper()
    if currency not in CURRENCIES:
        errors["currency"] = "Choose a currency from the list."
    amount = 0
    if "currency" not in errors:
        try:
            amount = parse_amount(form["amount"], currency)
        except ValueError as exc:
            errors["amount"] = str(exc)
    if not form["customer_email"]:
        errors["customer_email"] = "Enter the billing email (the paying customer's address)."
    if not errors:  # flask_havn's own checks (lengths, formats) before anything is asked of HAVN
        errors.update(_form_errors(havn.payments.validate(project, amount, currency, **_payment_fields(form))))
    if not errors and form["voucher_code"]:
        problem = _check_voucher(form["voucher_code"], amount, currency, project)
        if problem:
            errors["voucher_code"] = problem
    if errors:
        return _render_checkout(form, errors, 400)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d")
    subtotal = None
    discount = voucher_discount(form["voucher_code"], amount, currency) if form["voucher_code"].upper().startswith(
        "HAVN-") else None
    if discount is not None and discount[0] > 0:  # the customer pays less; HAVN gets both amounts
        subtotal, amount = amount, amount - discount[0]
    try:
        payment = havn.record_payment(project, amount, currency, **_payment_fields(form), subtotal=subtotal,
                                      invoice_id=f"SE-{stamp}-{secrets.token_hex(4).upper()}")
    except HAVNValidationError as exc:
        return _render_checkout(form, field_errors(exc, _ALIASES), 400)
    except HAVNConfigError as exc:  # client-side conversion without a rate for this currency
        db.session.rollback()
        return _render_checkout(form, {"currency": f"ShopEasy cannot take {currency} payments now: {exc.message}"},
                                400)
    # ... the card is charged here; the money arrived, so the payment is completed:
    payment = havn.complete_payment(payment)
    _flash_state(payment)
    return redirect(url_for(".show", payment_id=payment.id))


def _flash_state(payment: Any) -> None:
    state = payment.delivery_state
    if state == "sent":
        flash(f"Paid. HAVN recorded transaction {payment.havn_transaction_id}.", "success")
    elif state == "conversion_failed":
        flash("Paid, but HAVN refused the currency conversion: no commission was distributed.", "error")
    elif state in ("failed", "dead"):
        flash(f"Paid, but HAVN has not recorded it yet: {payment.last_error}", "error")
    else:
        flash("Paid. The payment waits for delivery to HAVN.", "info")


@bp.get("/payments")
def index() -> Any:
    """Every payment with its HAVN state, transaction id and commissions."""
    Payment = havn.models.Payment
    payments = db.session.execute(db.select(Payment).order_by(Payment.id.desc())).scalars().all()
    return render_template("payments.html", payments=payments, retryable=RETRYABLE)


def _payment_or_404(payment_id: int) -> Any:
    payment = get_row(db.session, havn.models.Payment, payment_id)
    if payment is None:
        abort(404, description=f"There is no payment #{payment_id}; see the payments list.")
    return payment


@bp.get("/payments/<int:payment_id>")
def show(payment_id: int) -> Any:
    """One payment: what HAVN made of it."""
    return render_template("payment.html", payment=_payment_or_404(payment_id), retryable=RETRYABLE)


@bp.post("/payments/<int:payment_id>/retry")
def retry(payment_id: int) -> Any:
    """Send a failed payment to HAVN again."""
    payment = _payment_or_404(payment_id)
    try:
        payment = havn.retry_payment(payment)
    except HAVNError as exc:
        db.session.rollback()
        flash(f"Cannot retry payment #{payment_id}: {exc.message}", "error")
    else:
        _flash_state(payment)
    return redirect(url_for(".show", payment_id=payment_id))

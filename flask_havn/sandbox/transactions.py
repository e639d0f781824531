"""``POST /transaction``: validation, idempotency, currency checks, customer type, commissions.

Commission rule: amounts are integer USD cents computed on the USD amount
*after* discount. Level ``n`` (1 = the associate owning ``referral_code``, 2 its
upline, …, up to ``len(commission_levels)``) earns
``floor(amount_usd × percent / 100)`` with ``Decimal`` arithmetic; the platform
keeps ``amount_usd − sum(levels)``, so nothing is created or lost. An inactive
upline earns nothing (its share stays with the platform) and the chain goes on
above it; a level whose share rounds down to 0 cents gets no commission record.

Currency: a non-USD amount needs ``server_side_conversion: true`` and is
converted with the sandbox's rate (``currency.to_usd_cents``: exact, half-up
once). A USD amount whose ``custom_fields`` carry ``original_currency``,
``original_amount`` (and ``exchange_rate``) was converted by the client: it is
recomputed the same way and must match to the cent, else the transaction is
``FAILED`` (200, no commission, the body and a ``transaction.conversion_failed``
event carry both amounts and both rates).

Idempotency: a transaction is identified by ``payment_gateway_transaction_id``
and, when given, by the ``Idempotency-Key``. The same identity with the same
payload (canonical JSON) replays the stored status and body and creates nothing;
with a different payload it is a 409 naming the identity that clashed.
Only recorded answers (201 completed, 200 FAILED) are replayed; 4xx are not stored.
"""
from __future__ import annotations

import copy
import hashlib
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Dict, List, Mapping, Optional, Tuple

from sqlalchemy import bindparam, or_, select

from ..currency import MAX_ORIGINAL_AMOUNT, parse_rate, rate_text, to_usd_cents
from ..errors import HAVNValidationError
from ..rules import (
    CUSTOMER_TYPES,
    check_amount,
    check_bool,
    check_currency,
    check_custom_fields,
    check_email,
    check_text,
    optional_code,
)
from ..signing import canonical_json
from .context import Ctx
from .errors import bad_request, conflict, from_validation, not_found, unprocessable
from .outcome import Event, Outcome
from .store import AssociateRow, CommissionRow, TransactionRow
from .users import find_associate, get_associate
from .vouchers import check_promo, find_voucher

__all__ = ["record_transaction", "commission_shares", "request_hash", "customer_type_for"]

_ACQUISITION = ("REFERRAL", "REFERRAL_VOUCHER")
_AUDIT_KEYS = ("original_currency", "original_amount", "exchange_rate")
CONVERSION_MISMATCH = "converted amount does not match server conversion"


def request_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the payload's canonical JSON: what "the same request" means."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def commission_shares(amount_usd: int, levels: Tuple[Decimal, ...]) -> List[int]:
    """``floor(amount × pct / 100)`` per level, in cents."""
    return [int((Decimal(amount_usd) * pct / 100).to_integral_value(rounding=ROUND_FLOOR)) for pct in levels]


#: Whether an email already has a completed transaction (built once; ``email`` is bound per call).
_SEEN_CUSTOMER = (select(TransactionRow.seq)
                  .where(TransactionRow.customer_email_lower == bindparam("email"), TransactionRow.status == "completed")
                  .limit(1))
#: The stored transactions a request may repeat: by its Idempotency-Key or by its gateway id (built once).
_SAME_REQUEST = (select(TransactionRow)
                 .where(or_(TransactionRow.idempotency_key == bindparam("key"),
                            TransactionRow.payment_gateway_transaction_id == bindparam("pg_id")))
                 .limit(2))


def customer_type_for(ctx: Ctx, email: str) -> str:
    """``NEW_CUSTOMER`` before the email's first completed transaction, ``RECURRING`` after."""
    seen = ctx.session.scalar(_SEEN_CUSTOMER, {"email": email.strip().lower()})
    return "RECURRING" if seen is not None else "NEW_CUSTOMER"


def _optional_text(payload: Mapping[str, Any], key: str, max_length: int) -> Optional[str]:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HAVNValidationError(key, "must be a string")
    value = value.strip()
    if len(value) > max_length:
        raise HAVNValidationError(key, f"must be at most {max_length} characters")
    return value or None


def _parse(payload: Mapping[str, Any]) -> Dict[str, Any]:
    """§3.1's rules (``referral_code`` optional); raises HAVNValidationError naming the field."""
    out: Dict[str, Any] = {
        "amount": check_amount(payload.get("amount")),
        "payment_gateway_transaction_id": check_text(
            payload.get("payment_gateway_transaction_id"), "payment_gateway_transaction_id", max_length=200),
        "payment_gateway": check_text(payload.get("payment_gateway"), "payment_gateway", max_length=100,
                                      strip=True).upper(),
        "customer_email": check_email(payload.get("customer_email"), "customer_email"),
        "referral_code": optional_code(payload.get("referral_code"), "referral_code", upper=True),
        "promo_code": _optional_text(payload, "promo_code", 100),
        "currency": check_currency(payload.get("currency", "USD")),
        "invoice_id": _optional_text(payload, "invoice_id", 100),
        "transaction_type": _optional_text(payload, "transaction_type", 100),
        "description": _optional_text(payload, "description", 1000),
        "custom_fields": None,
        "subtotal_transaction": None,
        "server_side_conversion": False,
    }
    if payload.get("custom_fields") is not None:
        out["custom_fields"] = check_custom_fields(payload["custom_fields"])
    if payload.get("subtotal_transaction") is not None:
        subtotal = check_amount(payload["subtotal_transaction"], "subtotal_transaction")
        if subtotal < out["amount"]:
            raise HAVNValidationError("subtotal_transaction", "must be at least amount (the price before discount)")
        out["subtotal_transaction"] = subtotal
    if payload.get("server_side_conversion") is not None:
        out["server_side_conversion"] = check_bool(payload["server_side_conversion"], "server_side_conversion")
    customer_type = _optional_text(payload, "customer_type", 20)
    if customer_type is not None and customer_type.upper() not in CUSTOMER_TYPES:
        raise HAVNValidationError("customer_type", f"must be one of {', '.join(CUSTOMER_TYPES)}")
    acquisition = _optional_text(payload, "acquisition_method", 20)
    if acquisition is not None and acquisition.upper() not in _ACQUISITION:
        raise HAVNValidationError("acquisition_method", f"must be one of {', '.join(_ACQUISITION)} (or left out: "
                                  "HAVN derives it)")
    return out


def _whole(value: Any, field: str) -> int:
    """A client-converted payment's original amount: whole minor units, 1 … 10**15.

    HAVN's 1e9 cap applies to the USD cents it is sent, not to the original
    (2,000,000,000 rupiah is about 1,266 USD).
    """
    if isinstance(value, bool):
        raise HAVNValidationError(field, "must be a whole number of minor units")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 16:
        value = int(value.strip())
    if isinstance(value, int) and not 0 < value <= MAX_ORIGINAL_AMOUNT:
        raise HAVNValidationError(field, f"must be from 1 to {MAX_ORIGINAL_AMOUNT} minor units")
    if not isinstance(value, int):
        raise HAVNValidationError(field, "must be a whole number of minor units")
    return value


def _submitted_rate(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool):
        raise HAVNValidationError("custom_fields.exchange_rate", "must be a decimal number")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    # parse_rate bounds the rate (1e-12 … 1e9, ≤ 20 digits), so echoing it never builds a huge string.
    return rate_text(parse_rate(text, field="custom_fields.exchange_rate"))


def _client_audit(custom_fields: Optional[Mapping[str, Any]]) -> Optional[Tuple[str, int, Optional[str]]]:
    """``(original_currency, original_amount, submitted_rate)`` of a client-converted USD payment."""
    fields = custom_fields or {}
    if not any(key in fields for key in _AUDIT_KEYS):
        return None
    for key in ("original_currency", "original_amount"):
        if key not in fields:
            raise HAVNValidationError(f"custom_fields.{key}", "a client-converted USD transaction needs "
                                      "original_currency, original_amount and exchange_rate in custom_fields")
    currency = check_currency(fields["original_currency"], "custom_fields.original_currency")
    amount = _whole(fields["original_amount"], "custom_fields.original_amount")
    return currency, amount, _submitted_rate(fields.get("exchange_rate"))


def _replay(row: TransactionRow) -> Outcome:
    return Outcome(row.response_status, row.response_body, [])


def _idempotent(ctx: Ctx, digest: str, pg_id: str, key: Optional[str]) -> Optional[Outcome]:
    """The stored answer for a repeated request, a 409 for a clashing one, else ``None``.

    The Idempotency-Key is looked at first, then the payment's gateway id (one query for both).
    """
    rows = ctx.session.scalars(_SAME_REQUEST, {"key": key, "pg_id": pg_id}).all()
    by_key = next((row for row in rows if key is not None and row.idempotency_key == key), None)
    if by_key is not None:
        if by_key.request_hash != digest:
            raise conflict(f"Idempotency-Key {key!r} was already used for a different transaction payload; "
                           "send a new key for a new transaction", field="Idempotency-Key")
        return _replay(by_key)
    row = next((row for row in rows if row.payment_gateway_transaction_id == pg_id), None)
    if row is not None:
        if row.request_hash != digest:
            raise conflict(f"payment_gateway_transaction_id {pg_id!r} was already recorded with a different payload; "
                           "resend the original payload or use the payment's own id",
                           field="payment_gateway_transaction_id")
        return _replay(row)
    return None


def _referrer(ctx: Ctx, code: Optional[str]) -> Optional[AssociateRow]:
    if code is None:
        return None
    row = find_associate(ctx, code)
    if row is None:
        raise not_found(f"referral_code {code} is not a known referral code; check the code the customer "
                        "came with (or leave it out to record platform revenue)", field="referral_code")
    if not row.is_active:
        raise unprocessable(f"referral code {code} belongs to an inactive associate and cannot earn commission; "
                            "send the transaction without it or reactivate the associate", field="referral_code")
    return row


def _pay_commissions(ctx: Ctx, txn_id: str, referrer: Optional[AssociateRow], amount_usd: int) -> List[Dict[str, Any]]:
    levels = ctx.settings.commission_levels
    shares = commission_shares(amount_usd, levels)
    out: List[Dict[str, Any]] = []
    associate, seen = referrer, set()
    for level, (pct, share) in enumerate(zip(levels, shares), start=1):
        if associate is None or associate.id in seen:
            break
        seen.add(associate.id)
        if associate.is_active and share > 0:
            seq, com_id = ctx.new_id("com", CommissionRow)
            ctx.session.add(CommissionRow(
                seq=seq, id=com_id, transaction_id=txn_id, associate_id=associate.id,
                referral_code=associate.referral_code, level=level, amount=share, percentage=str(pct),
                status="PENDING", created_at=ctx.stamp))
            ctx.session.flush()
            out.append({"commission_id": com_id, "associate_id": associate.id,
                        "referral_code": associate.referral_code, "level": level, "amount": share,
                        "percentage": float(pct), "type": "REFERRAL", "direction": "UP", "status": "PENDING"})
        associate = get_associate(ctx, associate.upline_id)
    return out


def record_transaction(ctx: Ctx, payload: Mapping[str, Any], *, idempotency_key: Optional[str] = None,
                       test_mode: bool = False) -> Outcome:
    """Validate, dedupe, convert, split commission; the Outcome with its events."""
    try:
        f = _parse(payload)
        audit = _client_audit(f["custom_fields"]) if f["currency"] == "USD" else None
    except HAVNValidationError as exc:
        raise from_validation(exc) from None
    key = None
    if idempotency_key is not None:
        key = idempotency_key.strip()
        if not key or len(key) > 255:
            raise bad_request("Idempotency-Key must be 1 to 255 characters", field="Idempotency-Key")
    digest = request_hash(payload)
    replay = _idempotent(ctx, digest, f["payment_gateway_transaction_id"], key)
    if replay is not None:
        return replay

    if f["promo_code"] is not None and f["referral_code"] is None:
        raise bad_request("promo_code needs a referral_code: a HAVN voucher is only usable together with the "
                          "referral code of the customer's referrer", field="promo_code")
    referrer = _referrer(ctx, f["referral_code"])

    amount, currency, subtotal = f["amount"], f["currency"], f["subtotal_transaction"]
    extra: Dict[str, Any] = {}
    failure: Optional[Dict[str, Any]] = None
    if currency != "USD":
        if not f["server_side_conversion"]:
            raise bad_request(
                f"currency {currency} needs a conversion to USD: send server_side_conversion: true to let HAVN "
                "convert with its own rate, or convert to USD cents yourself and send currency USD with "
                "custom_fields original_currency, original_amount and exchange_rate", field="currency")
        rate = ctx.rates[currency]
        amount_usd = to_usd_cents(amount, currency, rate)
        subtotal_usd = None if subtotal is None else to_usd_cents(subtotal, currency, rate)
        extra = {"amount_usd": amount_usd, "exchange_rate": rate_text(rate), "original_amount": amount,
                 "original_currency": currency}
    else:
        amount_usd, subtotal_usd = amount, subtotal
        if audit is not None:
            orig_currency, orig_amount, submitted_rate = audit
            server_rate = ctx.rates[orig_currency]
            expected = to_usd_cents(orig_amount, orig_currency, server_rate)
            if expected == amount:
                extra = {"amount_usd": amount, "exchange_rate": rate_text(server_rate), "original_amount": orig_amount,
                         "original_currency": orig_currency}
            else:
                failure = {"original_amount": orig_amount, "original_currency": orig_currency,
                           "submitted_amount": amount, "expected_amount": expected,
                           "submitted_exchange_rate": submitted_rate, "server_exchange_rate": rate_text(server_rate),
                           "reason": CONVERSION_MISMATCH}

    customer_type = customer_type_for(ctx, f["customer_email"])
    voucher = None
    if f["promo_code"] is not None:
        voucher = find_voucher(ctx, f["promo_code"])
        if voucher is None:
            raise not_found(f"promo_code {f['promo_code']} is not a known HAVN voucher; check the code or send "
                            "the transaction without it", field="promo_code")
        check_promo(ctx, voucher, customer_type=customer_type,
                    purchase_usd_cents=subtotal_usd if subtotal_usd is not None else amount_usd)

    seq, txn_id = ctx.new_id("txn", TransactionRow)
    status = "FAILED" if failure else "completed"
    acquisition = None if referrer is None else ("REFERRAL_VOUCHER" if voucher is not None else "REFERRAL")
    txn: Dict[str, Any] = {
        "transaction_id": txn_id, "amount": amount, "currency": currency, "status": status,
        "customer_type": customer_type, "acquisition_method": acquisition,
        "subtotal_transaction": subtotal, "subtotal_discount": (subtotal - amount) if subtotal is not None else 0,
        "created_at": ctx.stamp, "referral_code": f["referral_code"], "promo_code": f["promo_code"],
        "invoice_id": f["invoice_id"], "payment_gateway_transaction_id": f["payment_gateway_transaction_id"],
        "payment_gateway": f["payment_gateway"], "customer_email": f["customer_email"],
        "custom_fields": f["custom_fields"], **extra,
    }

    events: List[Event] = []
    if failure is not None:
        txn["platform_amount"] = 0
        failure = {"transaction": txn, **failure}
        commissions: List[Dict[str, Any]] = []
        status_code = 200
        body: Dict[str, Any] = {
            "success": False,
            "message": (f"Transaction FAILED: {CONVERSION_MISMATCH} (submitted {amount} USD cents, HAVN computes "
                        f"{failure['expected_amount']} at its rate {failure['server_exchange_rate']}); no commission "
                        "was distributed. Use server_side_conversion: true to let HAVN convert."),
            "transaction": txn, "commissions": commissions, "total_commission": 0, "commission_distributed": False,
            # The verdict's details, as in the transaction.conversion_failed event (HAVN documents no body here).
            **{key: value for key, value in failure.items() if key != "transaction"},
        }
        events.append(Event("transaction.conversion_failed", copy.deepcopy(failure), test_mode))
    else:
        commissions = _pay_commissions(ctx, txn_id, referrer, amount_usd)
        total = sum(c["amount"] for c in commissions)
        txn["platform_amount"] = amount_usd - total
        if voucher is not None:
            voucher.current_usage += 1
            voucher.updated_at = ctx.stamp
        status_code = 201
        message = "Transaction processed" if referrer is not None else \
            "Transaction processed; no referral code, recorded as platform revenue"
        body = {"success": True, "message": message, "transaction": txn, "commissions": commissions,
                "total_commission": total, "commission_distributed": bool(commissions)}
        if commissions:
            data = {"transaction": txn, "commissions": commissions, "total_commission": total}
            events.append(Event("commission.distributed", copy.deepcopy(data), test_mode))

    ctx.session.add(TransactionRow(
        seq=seq, id=txn_id, payment_gateway_transaction_id=f["payment_gateway_transaction_id"],
        idempotency_key=key, request_hash=digest, status=status, amount=amount, currency=currency,
        amount_usd=amount_usd, customer_email_lower=f["customer_email"].lower(), customer_type=customer_type,
        referral_code=f["referral_code"], promo_code=f["promo_code"], platform_amount=txn["platform_amount"],
        response_status=status_code, response_body=body, failure=failure, created_at=ctx.stamp))
    ctx.session.flush()
    return Outcome(status_code, body, events)

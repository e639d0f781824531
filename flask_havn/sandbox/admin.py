"""The control side of the backend: seeding, rates, events on demand and a dump of all state."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict, List, Mapping, MutableMapping, Optional

from sqlalchemy import select

from ..currency import parse_rate_table, rate_text, to_usd_cents
from ..errors import HAVNValidationError
from ..rules import check_bool, check_email, check_text, optional_code
from .context import Ctx, rates_in_force
from .errors import bad_request, from_validation, not_found, unprocessable
from .store import AssociateRow, CommissionRow, LoginTokenRow, RateRow, TransactionRow, UserRow, VoucherRow
from .transactions import CONVERSION_MISMATCH, commission_shares
from .users import associate_dict, create_associate, find_associate, find_user, user_dict
from .vouchers import create_voucher, voucher_dict

__all__ = ["EVENT_TYPES", "checked_rates", "rates_in_force", "store_rates", "seed", "build_event_data", "dump", "deep_merge"]

EVENT_TYPES = ("commission.distributed", "transaction.conversion_failed")
_SEED_KEYS = ("associates", "users", "vouchers", "rates")


def checked_rates(rates: Any, field: str = "rates") -> Dict[str, Decimal]:
    """A rate table sent to a control route, parsed by the one rate-table parser; 400 naming the bad entry."""
    try:
        return parse_rate_table(rates, field=field)
    except HAVNValidationError as exc:
        raise from_validation(exc) from None


def store_rates(ctx: Ctx, rates: Mapping[str, Decimal]) -> None:
    """Keep changed rates in the store (so every process sharing it converts alike) and in force for this call."""
    for code, rate in rates.items():
        ctx.session.merge(RateRow(code=code, rate=rate_text(rate)))
    ctx.session.flush()
    ctx.rates = {**ctx.rates, **rates}


def _list(spec: Mapping[str, Any], key: str) -> List[Any]:
    items = spec.get(key) or []
    if not isinstance(items, list):
        raise bad_request(f"{key} must be a list of objects", field=key)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise bad_request(f"{key}[{index}] must be an object", field=f"{key}[{index}]")
    return items


def _seed_associate(ctx: Ctx, item: Mapping[str, Any], p: str) -> AssociateRow:
    name = check_text(item.get("name"), f"{p}name", max_length=200, strip=True)
    email = None if item.get("email") is None else check_email(item["email"], f"{p}email")
    code = optional_code(item.get("referral_code"), f"{p}referral_code", upper=True)
    upline_code = optional_code(item.get("upline_code"), f"{p}upline_code", upper=True)
    active = check_bool(item.get("active", True), f"{p}active")
    role = item.get("role", "partner")
    if role not in ("owner", "partner"):
        raise HAVNValidationError(f"{p}role", "must be owner or partner")
    upline = None
    if upline_code is not None:
        upline = find_associate(ctx, upline_code)
        if upline is None:
            raise not_found(f"{p}upline_code {upline_code} is not known; list the upline before its downline",
                            field=f"{p}upline_code")
    user = None
    if email is not None:
        user = find_user(ctx, email)
        if user is None:
            user = _new_user(ctx, email, name, role=role, active=True)
    row = create_associate(ctx, name, email=email, user_id=user.id if user else None, upline=upline, role=role,
                           referral_code=code, active=active)
    if user is not None and user.associate_id is None:
        user.associate_id = row.id
    return row


def _new_user(ctx: Ctx, email: str, name: str, *, role: str, active: bool) -> UserRow:
    seq, public_id = ctx.new_id("usr", UserRow)
    user = UserRow(seq=seq, id=public_id, email=email, email_lower=email.lower(), name=name, role=role,
                   is_active=active, created_at=ctx.stamp, updated_at=ctx.stamp)
    ctx.session.add(user)
    ctx.session.flush()
    return user


def _seed_user(ctx: Ctx, item: Mapping[str, Any], p: str) -> UserRow:
    email = check_email(item.get("email"), f"{p}email")
    name = check_text(item.get("name"), f"{p}name", max_length=200, strip=True)
    active = check_bool(item.get("active", True), f"{p}active")
    code = optional_code(item.get("referral_code"), f"{p}referral_code", upper=True)
    user = find_user(ctx, email) or _new_user(ctx, email, name, role="partner", active=active)
    user.name, user.is_active, user.updated_at = name, active, ctx.stamp
    if code is not None:
        linked = find_associate(ctx, code)
        if linked is None:
            raise not_found(f"{p}referral_code {code} is not known; seed that associate first",
                            field=f"{p}referral_code")
        user.member_of_id = linked.id
    ctx.session.flush()
    return user


def seed(ctx: Ctx, spec: Any) -> Dict[str, Any]:
    """Create associates (in order), users, vouchers and rates; what was created."""
    if not isinstance(spec, Mapping):
        raise bad_request("the seed spec must be an object with associates, users, vouchers and/or rates")
    unknown = sorted(set(spec) - set(_SEED_KEYS))
    if unknown:
        raise bad_request(f"unknown seed key(s) {', '.join(unknown)}; use {', '.join(_SEED_KEYS)}",
                          field=unknown[0])
    rates = checked_rates(spec["rates"]) if spec.get("rates") is not None else {}
    created: Dict[str, Any] = {"associates": [], "users": [], "vouchers": [], "rates": {}}
    try:
        for i, item in enumerate(_list(spec, "associates")):
            row = _seed_associate(ctx, item, f"associates[{i}].")
            created["associates"].append({"associate_id": row.id, "name": row.name,
                                          "referral_code": row.referral_code, "upline_id": row.upline_id,
                                          "user_id": row.user_id})
        for i, item in enumerate(_list(spec, "users")):
            user = _seed_user(ctx, item, f"users[{i}].")
            created["users"].append({"user_id": user.id, "email": user.email, "is_active": user.is_active})
    except HAVNValidationError as exc:
        raise from_validation(exc) from None
    for i, item in enumerate(_list(spec, "vouchers")):
        voucher = create_voucher(ctx, item, prefix=f"vouchers[{i}].")
        created["vouchers"].append({"serial": voucher.serial, "code": voucher.code,
                                    "associate_id": voucher.associate_id})
    store_rates(ctx, rates)
    created["rates"] = {code: rate_text(rate) for code, rate in rates.items()}
    return created


def deep_merge(base: MutableMapping[str, Any], overrides: Mapping[str, Any]) -> MutableMapping[str, Any]:
    """Merge ``overrides`` into ``base``: nested objects merge, anything else replaces."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), MutableMapping):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def _stored(ctx: Ctx, transaction_id: str) -> TransactionRow:
    row = ctx.session.scalar(select(TransactionRow).where(TransactionRow.id == transaction_id))
    if row is None:
        raise not_found(f"transaction {transaction_id} is not stored; take an id from dump() or leave it out "
                        "for an invented event", field="transaction_id")
    return row


def _invented_transaction(ctx: Ctx, demo: int, **values: Any) -> Dict[str, Any]:
    txn = {
        "transaction_id": f"txn_demo{ctx.ids.hex('demo-txn', demo, 8)}", "amount": 10000, "currency": "USD",
        "status": "completed", "customer_type": "NEW_CUSTOMER", "acquisition_method": "REFERRAL",
        "subtotal_transaction": None, "subtotal_discount": 0, "created_at": ctx.stamp,
        "referral_code": "HAVN-SB-001", "promo_code": None, "invoice_id": f"INV-DEMO-{demo}",
        "payment_gateway_transaction_id": f"pg_demo_{ctx.ids.hex('demo-pg', demo, 10)}",
        "payment_gateway": "STRIPE", "customer_email": "customer@example.com", "custom_fields": None,
    }
    txn.update(values)
    return txn


def build_event_data(ctx: Ctx, event_type: str, transaction_id: Optional[str], demo: int) -> Dict[str, Any]:
    """The ``data`` of ``event_type``: from a stored transaction, or invented but realistic."""
    if event_type not in EVENT_TYPES:
        raise bad_request(f"unknown event type {event_type!r}; use one of {', '.join(EVENT_TYPES)}",
                          field="type")
    if transaction_id is not None:
        row = _stored(ctx, transaction_id)
        if event_type == "commission.distributed":
            if row.status != "completed":
                raise unprocessable(f"transaction {transaction_id} is {row.status}: it distributed no commission",
                                    field="transaction_id")
            body = row.response_body
            return {"transaction": body["transaction"], "commissions": body["commissions"],
                    "total_commission": body["total_commission"]}
        if row.failure is None:
            raise unprocessable(f"transaction {transaction_id} did not fail its conversion check",
                                field="transaction_id")
        return dict(row.failure)
    if event_type == "commission.distributed":
        txn = _invented_transaction(ctx, demo)
        shares = commission_shares(txn["amount"], ctx.settings.commission_levels)
        commissions: List[Dict[str, Any]] = [
            {"commission_id": f"com_demo{ctx.ids.hex('demo-com', demo * 100 + level, 8)}",
             "associate_id": f"asc_demo{level}", "referral_code": f"HAVN-SB-{level:03d}", "level": level,
             "amount": share, "percentage": float(pct), "type": "REFERRAL", "direction": "UP", "status": "PENDING"}
            for level, (pct, share) in enumerate(zip(ctx.settings.commission_levels, shares), start=1) if share > 0
        ]
        total = sum(c["amount"] for c in commissions)
        txn["platform_amount"] = txn["amount"] - total
        return {"transaction": txn, "commissions": commissions, "total_commission": total}
    original, rate = 150000, ctx.rates["IDR"]
    expected = to_usd_cents(original, "IDR", rate)
    submitted_rate = rate * Decimal("1.05")
    submitted = to_usd_cents(original, "IDR", submitted_rate)
    if submitted == expected:
        submitted += 1
    txn = _invented_transaction(ctx, demo, status="FAILED", amount=submitted, platform_amount=0,
                                custom_fields={"original_currency": "IDR", "original_amount": original,
                                               "exchange_rate": rate_text(submitted_rate)})
    return {"transaction": txn, "original_amount": original, "original_currency": "IDR",
            "submitted_amount": submitted, "expected_amount": expected,
            "submitted_exchange_rate": rate_text(submitted_rate), "server_exchange_rate": rate_text(rate),
            "reason": CONVERSION_MISMATCH}


def _tree(associates: List[AssociateRow]) -> List[Dict[str, Any]]:
    children: Dict[Optional[str], List[AssociateRow]] = {}
    ids = {a.id for a in associates}
    for a in associates:
        parent = a.upline_id if a.upline_id in ids else None
        children.setdefault(parent, []).append(a)

    def node(a: AssociateRow, depth: int) -> Dict[str, Any]:
        kids = children.get(a.id, []) if depth < 1000 else []
        return {"associate_id": a.id, "referral_code": a.referral_code, "name": a.name,
                "downlines": [node(k, depth + 1) for k in kids]}

    return [node(a, 0) for a in children.get(None, [])]


def dump(ctx: Ctx) -> Dict[str, Any]:
    """Every stored thing, in creation order, plus counts and the associate tree."""
    s = ctx.session
    users = list(s.scalars(select(UserRow).order_by(UserRow.seq)))
    associates = list(s.scalars(select(AssociateRow).order_by(AssociateRow.seq)))
    transactions = list(s.scalars(select(TransactionRow).order_by(TransactionRow.seq)))
    commissions = list(s.scalars(select(CommissionRow).order_by(CommissionRow.seq)))
    vouchers = list(s.scalars(select(VoucherRow).order_by(VoucherRow.seq)))
    tokens = list(s.scalars(select(LoginTokenRow).order_by(LoginTokenRow.seq)))
    return {
        "counts": {"users": len(users), "associates": len(associates), "transactions": len(transactions),
                   "commissions": len(commissions), "vouchers": len(vouchers), "login_tokens": len(tokens)},
        "users": [{**user_dict(u), "associate_id": u.associate_id, "member_of_id": u.member_of_id,
                   "created_at": u.created_at} for u in users],
        "associates": [{**associate_dict(a), "email": a.email, "user_id": a.user_id, "created_at": a.created_at}
                       for a in associates],
        "associate_tree": _tree(associates),
        "transactions": [{**t.response_body["transaction"], "idempotency_key": t.idempotency_key,
                          "amount_usd": t.amount_usd} for t in transactions],
        "commissions": [{"commission_id": c.id, "transaction_id": c.transaction_id, "associate_id": c.associate_id,
                         "referral_code": c.referral_code, "level": c.level, "amount": c.amount,
                         "percentage": float(Decimal(c.percentage)), "status": c.status,
                         "created_at": c.created_at} for c in commissions],
        "vouchers": [voucher_dict(ctx, v) for v in vouchers],
        "login_tokens": [{"user_id": t.user_id, "used": t.used, "created_at": t.created_at} for t in tokens],
        "rates": {code: rate_text(rate) for code, rate in sorted(ctx.rates.items())},
    }


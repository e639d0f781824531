"""HAVN vouchers: seeding, ``POST /voucher/validate``, ``GET /vouchers`` and promo-code checks.

``value`` is in basis points for ``DISCOUNT_PERCENTAGE`` (2000 = 20 %) and in minor
units of the voucher's currency for ``DISCOUNT_FIXED``; ``min_purchase`` and
``max_purchase`` are minor units of the voucher's currency. Amounts in another
currency are converted source → USD → voucher currency with the sandbox's rates.
"""
from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from sqlalchemy import select

from ..currency import from_usd_cents, to_usd_cents
from ..errors import HAVNValidationError
from ..rules import CUSTOMER_TYPES, check_amount, check_bool, check_currency
from .context import Ctx
from .errors import bad_request, conflict, from_validation, not_found, unprocessable
from .store import VoucherRow
from .users import find_associate, get_associate

__all__ = [
    "VOUCHER_TYPES",
    "SAAS_COMPANY_ID",
    "convert",
    "find_voucher",
    "voucher_problem",
    "voucher_dict",
    "create_voucher",
    "check_promo",
    "validate_voucher",
    "list_vouchers",
]

VOUCHER_TYPES = ("DISCOUNT_PERCENTAGE", "DISCOUNT_FIXED")
#: The one SaaS company the sandbox plays.
SAAS_COMPANY_ID = 1
_SAAS_CODE = "S01"
_SORT_KEYS = ("code", "type", "value", "start_date", "end_date", "created_date", "current_usage",
              "usage_limit", "min_purchase")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def convert(ctx: Ctx, amount: int, source: str, target: str) -> int:
    """``amount`` minor units of ``source`` in minor units of ``target``, through USD (half-up)."""
    if source == target:
        return amount
    cents = to_usd_cents(amount, source, ctx.rates[source])
    return from_usd_cents(cents, target, ctx.rates[target])


def find_voucher(ctx: Ctx, code: str) -> Optional[VoucherRow]:
    """The voucher with ``code`` (case-insensitive)."""
    return ctx.session.scalar(select(VoucherRow).where(VoucherRow.code == code.strip().upper()))


def _today(ctx: Ctx) -> str:
    return ctx.now.date().isoformat()


def _expired(ctx: Ctx, row: VoucherRow) -> bool:
    return row.end_date is not None and _today(ctx) > row.end_date


def voucher_problem(ctx: Ctx, row: VoucherRow) -> Optional[str]:
    """Why the voucher cannot be used now (``None`` when it can)."""
    if not row.active:
        return f"voucher {row.code} is inactive"
    if row.start_date is not None and _today(ctx) < row.start_date:
        return f"voucher {row.code} is not valid before {row.start_date}"
    if _expired(ctx, row):
        return f"voucher {row.code} expired on {row.end_date}"
    if row.usage_limit is not None and row.current_usage >= row.usage_limit:
        return f"voucher {row.code} is used up ({row.current_usage} of {row.usage_limit} uses)"
    return None


def voucher_dict(ctx: Ctx, row: VoucherRow, display_currency: Optional[str] = None) -> Dict[str, Any]:
    """A voucher as HAVN lists it (§4.3); money converted when ``display_currency`` is given."""
    owner = get_associate(ctx, row.associate_id)

    def shown(value: Optional[int]) -> Optional[int]:
        if value is None or display_currency is None:
            return value
        return convert(ctx, value, row.currency, display_currency)

    value = shown(row.value) if row.type == "DISCOUNT_FIXED" else row.value
    remaining = None if row.usage_limit is None else max(row.usage_limit - row.current_usage, 0)
    used_pct = 0.0 if not row.usage_limit else round(row.current_usage * 100.0 / row.usage_limit, 2)
    code = owner.referral_code if owner else None
    return {
        "serial": row.serial,
        "saas_company_id": SAAS_COMPANY_ID,
        "associate_id": row.associate_id,
        "code": row.code,
        "type": row.type,
        "value": value,
        "usage_limit": row.usage_limit,
        "current_usage": row.current_usage,
        "min_purchase": shown(row.min_purchase),
        "max_purchase": shown(row.max_purchase),
        "start_date": row.start_date,
        "end_date": row.end_date,
        "active": row.active,
        "client_type": row.client_type,
        "description": row.description,
        "creation_cost": 0,
        "created_by": "sandbox",
        "created_date": row.created_date,
        "updated_at": row.updated_at,
        "currency": row.currency,
        "configured_currency": row.currency,
        "display_currency": display_currency,
        "affiliates_url": f"https://havn.com/r/sandbox?ref={code}&vc={row.code}" if code else None,
        "affiliates_qr_image": None,
        "is_expired": _expired(ctx, row),
        "is_valid": voucher_problem(ctx, row) is None,
        "remaining_usage": remaining,
        "usage_percentage": used_pct,
        "associate": {"associate_id": owner.id, "associate_name": owner.name, "referral_code": owner.referral_code}
        if owner else None,
    }


def _opt_int(spec: Mapping[str, Any], key: str, field: str, minimum: int) -> Optional[int]:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise bad_request(f"{field} must be a whole number of at least {minimum}", field=field)
    return value


def _opt_date(spec: Mapping[str, Any], key: str, field: str) -> Optional[str]:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()[:10]
    if not isinstance(value, str) or not _DATE.match(value) or not _is_date(value):
        raise bad_request(f"{field} must be a date written YYYY-MM-DD", field=field)
    return value


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def create_voucher(ctx: Ctx, spec: Mapping[str, Any], prefix: str = "") -> VoucherRow:
    """Add a voucher from a seed spec; errors name ``{prefix}{field}``."""
    p = prefix
    if not isinstance(spec, Mapping):
        raise bad_request(f"{p.rstrip('.') or 'voucher'} must be an object", field=p.rstrip(".") or None)
    code_of_owner = spec.get("associate_code")
    if not isinstance(code_of_owner, str) or not code_of_owner.strip():
        raise bad_request(f"{p}associate_code is required: the referral code of the voucher's owner",
                          field=f"{p}associate_code")
    owner = find_associate(ctx, code_of_owner)
    if owner is None:
        raise not_found(f"{p}associate_code {code_of_owner} is not a known referral code; seed it first",
                        field=f"{p}associate_code")
    vtype = spec.get("type")
    if vtype not in VOUCHER_TYPES:
        raise bad_request(f"{p}type must be one of {', '.join(VOUCHER_TYPES)}", field=f"{p}type")
    value = _opt_int(spec, "value", f"{p}value", 1)
    if value is None:
        raise bad_request(f"{p}value is required (basis points or minor units)", field=f"{p}value")
    if vtype == "DISCOUNT_PERCENTAGE" and value > 10000:
        raise bad_request(f"{p}value is in basis points: at most 10000 (= 100%)", field=f"{p}value")
    min_purchase = _opt_int(spec, "min_purchase", f"{p}min_purchase", 0) or 0
    max_purchase = _opt_int(spec, "max_purchase", f"{p}max_purchase", 1)
    usage_limit = _opt_int(spec, "usage_limit", f"{p}usage_limit", 1)
    client_type = spec.get("client_type")
    if client_type is not None and client_type not in CUSTOMER_TYPES:
        raise bad_request(f"{p}client_type must be one of {', '.join(CUSTOMER_TYPES)} or null",
                          field=f"{p}client_type")
    try:
        currency = check_currency(spec.get("currency", "USD"), f"{p}currency")
        active = check_bool(spec.get("active", True), f"{p}active")
    except HAVNValidationError as exc:
        raise from_validation(exc) from None
    start = _opt_date(spec, "start_date", f"{p}start_date")
    end = _opt_date(spec, "end_date", f"{p}end_date")
    if start and end and start > end:
        raise bad_request(f"{p}end_date must not be before start_date", field=f"{p}end_date")
    description = spec.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 500):
        raise bad_request(f"{p}description must be a string of at most 500 characters", field=f"{p}description")

    seq, serial = ctx.new_id("vch", VoucherRow)
    code = spec.get("code")
    if code is not None:
        if not isinstance(code, str) or not 3 <= len(code.strip()) <= 100:
            raise bad_request(f"{p}code must be 3 to 100 characters", field=f"{p}code")
        code = code.strip().upper()
        if find_voucher(ctx, code) is not None:
            raise conflict(f"voucher code {code} already exists; choose another code", field=f"{p}code")
    else:
        part = owner.referral_code.replace("HAVN-", "", 1).replace("-", "")
        code = f"HAVN-{part}-{_SAAS_CODE}-{ctx.ids.alnum('vch', seq)}"
    row = VoucherRow(
        seq=seq, serial=serial, code=code, associate_id=owner.id, type=vtype, value=value,
        usage_limit=usage_limit, current_usage=0, min_purchase=min_purchase, max_purchase=max_purchase,
        currency=currency, client_type=client_type, active=active, start_date=start, end_date=end,
        description=description, created_date=ctx.stamp, updated_at=ctx.stamp,
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def check_promo(ctx: Ctx, row: VoucherRow, *, customer_type: str, purchase_usd_cents: int) -> None:
    """Raise 422 unless ``row`` may discount this purchase (state, min purchase, client type)."""
    problem = voucher_problem(ctx, row)
    if problem is not None:
        raise unprocessable(f"{problem}; send the transaction without promo_code or use a valid voucher",
                            field="promo_code")
    purchase = convert(ctx, purchase_usd_cents, "USD", row.currency)
    if purchase < row.min_purchase:
        raise unprocessable(f"voucher {row.code} needs a purchase of at least {row.min_purchase} "
                            f"{row.currency} minor units; this one is {purchase}", field="promo_code")
    if row.client_type is not None and row.client_type != customer_type:
        raise unprocessable(f"voucher {row.code} is only for {row.client_type} customers and this customer is "
                            f"{customer_type}", field="promo_code")


def validate_voucher(ctx: Ctx, payload: Mapping[str, Any]) -> VoucherRow:
    """``POST /voucher/validate``: 404 unknown, 400 unusable, 422 amount refused, else the usable voucher."""
    code = payload.get("voucher_code")
    if not isinstance(code, str) or not code.strip() or len(code) > 100:
        raise bad_request("voucher_code is required: a voucher code of at most 100 characters",
                          field="voucher_code")
    try:
        amount = None if payload.get("amount") is None else check_amount(payload["amount"])
        currency = None if payload.get("currency") is None else check_currency(payload["currency"])
    except HAVNValidationError as exc:
        raise from_validation(exc) from None
    row = find_voucher(ctx, code)
    if row is None:
        raise not_found(f"voucher {code.strip()} not found; check the code (HAVN vouchers start with HAVN-)",
                        field="voucher_code")
    problem = voucher_problem(ctx, row)
    if problem is not None:
        raise bad_request(f"{problem}; the customer cannot use it", field="voucher_code")
    if amount is not None:
        in_voucher = convert(ctx, amount, currency or row.currency, row.currency)
        if in_voucher < row.min_purchase:
            raise unprocessable(f"amount {in_voucher} {row.currency} minor units is below the voucher's "
                                f"min_purchase of {row.min_purchase}", field="amount")
        if row.max_purchase is not None and in_voucher > row.max_purchase:
            raise unprocessable(f"amount {in_voucher} {row.currency} minor units is above the voucher's "
                                f"max_purchase of {row.max_purchase}", field="amount")
    return row


# -- GET /vouchers --------------------------------------------------------------------------------


def _param(params: Mapping[str, Any], name: str) -> Optional[str]:
    value = params.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(params: Mapping[str, Any], name: str, default: Optional[int] = None, *,
         low: Optional[int] = None, high: Optional[int] = None) -> Optional[int]:
    text = _param(params, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"{name} must be a whole number, got {text!r}", field=name) from None
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_request(f"{name} must be {bounds}", field=name)
    return value


def _bool(params: Mapping[str, Any], name: str) -> Optional[bool]:
    text = _param(params, name)
    if text is None:
        return None
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise bad_request(f"{name} must be true or false (True/False/1/0), got {text!r}", field=name)


def _choice(params: Mapping[str, Any], name: str, choices: Tuple[str, ...], upper: bool = True) -> Optional[str]:
    text = _param(params, name)
    if text is None:
        return None
    value = text.upper() if upper else text.lower()
    if value not in choices:
        raise bad_request(f"{name} must be one of {', '.join(choices)}", field=name)
    return value


def _date_param(params: Mapping[str, Any], name: str, allow_time: bool = False) -> Optional[str]:
    text = _param(params, name)
    if text is None:
        return None
    ok = _DATE.match(text) and _is_date(text)
    if not ok and allow_time and _DATETIME.match(text):
        try:
            datetime.fromisoformat(text)
            ok = True
        except ValueError:
            ok = False
    if not ok:
        shape = "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS" if allow_time else "YYYY-MM-DD"
        raise bad_request(f"{name} must be a date written {shape}, got {text!r}", field=name)
    return text


def _range(low: Optional[Any], high: Optional[Any], low_name: str) -> None:
    if low is not None and high is not None and low > high:
        raise bad_request(f"{low_name} must not be greater than its '_to'/'max' counterpart", field=low_name)


def _within(value: Optional[Any], low: Optional[Any], high: Optional[Any]) -> bool:
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def list_vouchers(ctx: Ctx, params: Mapping[str, Any]) -> Dict[str, Any]:
    """``GET /vouchers`` with HAVN's filters, sorting and exactly-six-key pagination."""
    page = _int(params, "page", 1, low=1) or 1
    per_page = _int(params, "per_page", 10, low=1, high=100) or 10
    active = _bool(params, "active")
    is_valid = _bool(params, "is_valid")
    is_expired = _bool(params, "is_expired")
    vtype = _choice(params, "type", VOUCHER_TYPES)
    client_type = _choice(params, "client_type", CUSTOMER_TYPES)
    sort_by = _choice(params, "sort_by", _SORT_KEYS, upper=False) or "created_date"
    sort_order = _choice(params, "sort_order", ("asc", "desc"), upper=False) or "desc"
    try:
        currency = None if _param(params, "currency") is None else check_currency(_param(params, "currency"))
        display = (None if _param(params, "display_currency") is None
                   else check_currency(_param(params, "display_currency"), "display_currency"))
    except HAVNValidationError as exc:
        raise from_validation(exc) from None
    search = (_param(params, "search") or "").lower() or None
    dates = {n: _date_param(params, n) for n in ("start_date_from", "start_date_to", "end_date_from", "end_date_to")}
    created_from = _date_param(params, "created_from", allow_time=True)
    created_to = _date_param(params, "created_to", allow_time=True)
    numbers = {n: _int(params, n, low=0) for n in ("min_value", "max_value", "min_purchase_from", "min_purchase_to",
                                                   "usage_limit_from", "usage_limit_to")}
    _range(numbers["min_value"], numbers["max_value"], "min_value")
    _range(numbers["min_purchase_from"], numbers["min_purchase_to"], "min_purchase_from")
    _range(numbers["usage_limit_from"], numbers["usage_limit_to"], "usage_limit_from")
    _range(dates["start_date_from"], dates["start_date_to"], "start_date_from")
    _range(dates["end_date_from"], dates["end_date_to"], "end_date_from")
    _range(created_from, created_to, "created_from")

    checks: List[Callable[[VoucherRow], bool]] = [
        lambda r: active is None or r.active == active,
        lambda r: vtype is None or r.type == vtype,
        lambda r: client_type is None or r.client_type == client_type,
        lambda r: currency is None or r.currency == currency,
        lambda r: search is None or search in r.code.lower() or search in (r.description or "").lower(),
        lambda r: _within(r.start_date, dates["start_date_from"], dates["start_date_to"]),
        lambda r: _within(r.end_date, dates["end_date_from"], dates["end_date_to"]),
        lambda r: _within(r.value, numbers["min_value"], numbers["max_value"]),
        lambda r: _within(r.min_purchase, numbers["min_purchase_from"], numbers["min_purchase_to"]),
        lambda r: _within(r.usage_limit, numbers["usage_limit_from"], numbers["usage_limit_to"]),
        lambda r: created_from is None or r.created_date[:len(created_from)] >= created_from,
        lambda r: created_to is None or r.created_date[:len(created_to)] <= created_to,
        lambda r: is_valid is None or (voucher_problem(ctx, r) is None) == is_valid,
        lambda r: is_expired is None or _expired(ctx, r) == is_expired,
    ]
    rows = [r for r in ctx.session.scalars(select(VoucherRow).order_by(VoucherRow.seq)) if all(c(r) for c in checks)]
    present = [r for r in rows if getattr(r, sort_by) is not None]
    missing = [r for r in rows if getattr(r, sort_by) is None]
    present.sort(key=lambda r: (getattr(r, sort_by), r.seq), reverse=(sort_order == "desc"))
    ordered = present + missing

    total = len(ordered)
    total_pages = math.ceil(total / per_page) if total else 0
    start = (page - 1) * per_page
    data = [voucher_dict(ctx, r, display) for r in ordered[start:start + per_page]]
    return {
        "success": True,
        "message": "Success",
        "data": data,
        "pagination": {
            "page": page,
            "limit": per_page,
            "total": total,
            "total_pages": total_pages,
            "has_prev": page > 1,
            "has_next": page < total_pages,
        },
    }


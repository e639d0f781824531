"""Typed results of the HAVN client, parsed tolerantly. No Flask.

HAVN's docs and its SDK disagree on many names (contract §11.7), so every
``from_dict`` ignores unknown keys, defaults missing ones, accepts the known
synonyms (``per_page``/``limit``, ``failed``/``errors``, top-level
``referral_code``/``user_id``) and keeps the untouched response in ``.raw``.
Nothing here raises on a surprising shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "Associate",
    "User",
    "SyncResult",
    "BulkSummary",
    "BulkSyncResult",
    "Transaction",
    "Commission",
    "TransactionResult",
    "Voucher",
    "Pagination",
    "VoucherPage",
    "VoucherValidation",
]


def _map(value: Any) -> Dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _maps(value: Any) -> List[Dict[str, Any]]:
    if not isinstance(value, (list, tuple)):
        return []
    return [dict(item) for item in value if isinstance(item, Mapping)]


def _str(value: Any) -> Optional[str]:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _int(value: Any) -> Optional[int]:
    """An integer from an int, an integral float or a numeric string; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if math.isfinite(number) and number.is_integer() else None
    return None


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _bool(value: Any, default: Optional[bool] = None) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return default


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return None


@dataclass
class Associate:
    """A HAVN associate (a node of the referral tree)."""

    associate_id: Optional[str] = None
    associate_name: Optional[str] = None
    referral_code: Optional[str] = None
    type: Optional[str] = None
    is_active: Optional[bool] = None
    upline_id: Optional[str] = None
    role: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> "Associate":
        d = _map(data)
        return cls(
            associate_id=_str(_first(d, "associate_id", "id")),
            associate_name=_str(_first(d, "associate_name", "name")),
            referral_code=_str(d.get("referral_code")),
            type=_str(d.get("type")),
            is_active=_bool(d.get("is_active")),
            upline_id=_str(d.get("upline_id")),
            role=_str(d.get("role")),
            raw=d,
        )


@dataclass
class User:
    """A HAVN user account."""

    id: Optional[str] = None
    email: Optional[str] = None
    name: Optional[str] = None
    is_active: Optional[bool] = None
    google_id: Optional[str] = None
    avatar: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> "User":
        d = _map(data)
        return cls(
            id=_str(_first(d, "id", "user_id")),
            email=_str(d.get("email")),
            name=_str(d.get("name")),
            is_active=_bool(d.get("is_active")),
            google_id=_str(d.get("google_id")),
            avatar=_str(_first(d, "avatar", "picture")),
            raw=d,
        )


@dataclass
class SyncResult:
    """Answer to one user sync (also each item of a bulk sync's ``results``)."""

    success: bool = False
    message: str = ""
    user_created: bool = False
    associate_created: bool = False
    user: Optional[User] = None
    associate: Optional[Associate] = None
    referral_code: Optional[str] = None
    user_id: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> "SyncResult":
        d = _map(data)
        user = User.from_dict(d["user"]) if isinstance(d.get("user"), Mapping) else None
        associate = Associate.from_dict(d["associate"]) if isinstance(d.get("associate"), Mapping) else None
        referral_code = _str(d.get("referral_code")) or (associate.referral_code if associate else None)
        user_id = _str(d.get("user_id")) or (user.id if user else None)
        return cls(
            success=bool(_bool(d.get("success"), False)),
            message=_str(d.get("message")) or "",
            user_created=bool(_bool(d.get("user_created"), False)),
            associate_created=bool(_bool(d.get("associate_created"), False)),
            user=user,
            associate=associate,
            referral_code=referral_code,
            user_id=user_id,
            raw=d,
        )

    @property
    def email(self) -> Optional[str]:
        """The synced user's email (``user.email`` or a bulk item's top-level ``email``)."""
        return (self.user.email if self.user else None) or _str(self.raw.get("email"))


@dataclass
class BulkSummary:
    """Counts of a bulk sync; HAVN's ``failed`` is read as ``errors``."""

    total: int = 0
    success: int = 0
    errors: int = 0

    @classmethod
    def from_dict(cls, data: Any) -> "BulkSummary":
        d = _map(data)
        return cls(
            total=_int(d.get("total")) or 0,
            success=_int(_first(d, "success", "succeeded")) or 0,
            errors=_int(_first(d, "errors", "failed")) or 0,
        )


@dataclass
class BulkSyncResult:
    """Answer to a bulk user sync, or the merge of several batches (see :meth:`merge`).

    ``errors`` items are ``{"index", "email", "error"}``; ``index`` is the
    position in the list the caller passed (``None`` if HAVN sent none).
    """

    success: bool = False
    message: str = ""
    summary: BulkSummary = field(default_factory=BulkSummary)
    results: List[SyncResult] = field(default_factory=list)
    errors: List[Dict[str, Any]] = field(default_factory=list)
    referral_code: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> "BulkSyncResult":
        d = _map(data)
        errors = []
        for item in _maps(d.get("errors")):
            item["index"] = _int(item.get("index"))
            item.setdefault("email", None)
            item["error"] = _str(_first(item, "error", "message")) or ""
            errors.append(item)
        results = [SyncResult.from_dict(item) for item in _maps(d.get("results"))]
        referral_code = _str(d.get("referral_code"))
        if referral_code is None:
            referral_code = next((r.referral_code for r in results if r.referral_code), None)
        return cls(
            success=bool(_bool(d.get("success"), False)),
            message=_str(d.get("message")) or "",
            summary=BulkSummary.from_dict(d.get("summary")),
            results=results,
            errors=errors,
            referral_code=referral_code,
            raw=d,
        )

    @classmethod
    def merge(cls, parts: Sequence[Tuple[int, "BulkSyncResult"]]) -> "BulkSyncResult":
        """One result from ``(offset, batch_result)`` pairs, ``offset`` = the batch's first index.

        Summaries are summed, ``results`` concatenated, error indexes re-based
        by ``offset``; ``referral_code`` is the first batch's that has one;
        ``success`` is true if any batch succeeded; ``raw`` is ``{"batches": [...]}``.
        """
        merged = cls(raw={"batches": [part.raw for _, part in parts]})
        messages: List[str] = []
        for offset, part in parts:
            merged.success = merged.success or part.success
            merged.summary.total += part.summary.total
            merged.summary.success += part.summary.success
            merged.summary.errors += part.summary.errors
            merged.results.extend(part.results)
            for error in part.errors:
                item = dict(error)
                if item.get("index") is not None:
                    item["index"] = item["index"] + offset
                merged.errors.append(item)
            if merged.referral_code is None and part.referral_code:
                merged.referral_code = part.referral_code
            if part.message and part.message not in messages:
                messages.append(part.message)
        merged.message = "; ".join(messages)
        return merged


@dataclass
class Transaction:
    """The transaction HAVN recorded."""

    transaction_id: Optional[str] = None
    amount: Optional[int] = None
    currency: Optional[str] = None
    status: Optional[str] = None
    customer_type: Optional[str] = None
    acquisition_method: Optional[str] = None
    subtotal_transaction: Optional[int] = None
    subtotal_discount: Optional[int] = None
    created_at: Optional[str] = None
    referral_code: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> "Transaction":
        d = _map(data)
        return cls(
            transaction_id=_str(_first(d, "transaction_id", "id")),
            amount=_int(d.get("amount")),
            currency=_str(d.get("currency")),
            status=_str(d.get("status")),
            customer_type=_str(d.get("customer_type")),
            acquisition_method=_str(d.get("acquisition_method")),
            subtotal_transaction=_int(d.get("subtotal_transaction")),
            subtotal_discount=_int(d.get("subtotal_discount")),
            created_at=_str(d.get("created_at")),
            referral_code=_str(d.get("referral_code")),
            raw=d,
        )


@dataclass
class Commission:
    """One commission share; ``amount`` in USD cents, ``percentage`` 10.0 = 10 %."""

    commission_id: Optional[str] = None
    associate_id: Optional[str] = None
    referral_code: Optional[str] = None
    level: Optional[int] = None
    amount: Optional[int] = None
    percentage: Optional[float] = None
    type: Optional[str] = None
    direction: Optional[str] = None
    status: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> "Commission":
        d = _map(data)
        percentage = _num(d.get("percentage"))
        if percentage is None and _num(d.get("rate")) is not None:
            # TRANSACTION_WEBHOOK.md's ``rate`` is a fraction (0.05 = 5 %).
            percentage = round(_num(d["rate"]) * 100, 10)  # type: ignore[operator]
        return cls(
            commission_id=_str(_first(d, "commission_id", "id")),
            associate_id=_str(d.get("associate_id")),
            referral_code=_str(d.get("referral_code")),
            level=_int(d.get("level")),
            amount=_int(d.get("amount")),
            percentage=percentage,
            type=_str(d.get("type")),
            direction=_str(d.get("direction")),
            status=_str(d.get("status")),
            raw=d,
        )


@dataclass
class TransactionResult:
    """Answer to ``transactions.send``: the transaction and the commissions it produced."""

    success: bool = False
    message: str = ""
    transaction: Transaction = field(default_factory=Transaction)
    commissions: List[Commission] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> "TransactionResult":
        d = _map(data)
        return cls(
            success=bool(_bool(d.get("success"), False)),
            message=_str(d.get("message")) or "",
            transaction=Transaction.from_dict(d.get("transaction")),
            commissions=[Commission.from_dict(c) for c in _maps(d.get("commissions"))],
            raw=d,
        )

    @property
    def commission_distributed(self) -> bool:
        """HAVN's ``commission_distributed`` when sent, else whether any commission came back."""
        flag = _bool(self.raw.get("commission_distributed"))
        return flag if flag is not None else bool(self.commissions)

    @property
    def total_commission(self) -> int:
        """HAVN's ``total_commission`` (cents) when sent, else the sum of the commission amounts."""
        total = _num(self.raw.get("total_commission"))
        if total is not None:
            return int(round(total))
        return sum(c.amount for c in self.commissions if c.amount is not None)


@dataclass
class Voucher:
    """A HAVN voucher (contract §4.3); every field optional."""

    serial: Optional[str] = None
    saas_company_id: Any = None
    associate_id: Optional[str] = None
    code: Optional[str] = None
    type: Optional[str] = None
    value: Optional[float] = None
    usage_limit: Optional[int] = None
    current_usage: Optional[int] = None
    min_purchase: Optional[int] = None
    max_purchase: Optional[int] = None
    start_date: Optional[str] = None
    end_date: Optional[str] = None
    active: Optional[bool] = None
    client_type: Optional[str] = None
    description: Optional[str] = None
    creation_cost: Optional[float] = None
    created_by: Optional[str] = None
    created_date: Optional[str] = None
    updated_at: Optional[str] = None
    currency: Optional[str] = None
    configured_currency: Optional[str] = None
    display_currency: Optional[str] = None
    affiliates_url: Optional[str] = None
    affiliates_qr_image: Optional[str] = None
    is_expired: Optional[bool] = None
    is_valid: Optional[bool] = None
    remaining_usage: Optional[int] = None
    usage_percentage: Optional[float] = None
    associate: Optional[Dict[str, Any]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    _STRINGS = ("serial", "associate_id", "code", "type", "start_date", "end_date", "client_type",
                "description", "created_by", "created_date", "updated_at", "currency",
                "configured_currency", "display_currency", "affiliates_url", "affiliates_qr_image")
    _INTS = ("usage_limit", "current_usage", "min_purchase", "max_purchase", "remaining_usage")
    _NUMBERS = ("value", "creation_cost", "usage_percentage")
    _BOOLS = ("active", "is_expired", "is_valid")

    @classmethod
    def from_dict(cls, data: Any) -> "Voucher":
        d = _map(data)
        values: Dict[str, Any] = {"raw": d, "saas_company_id": d.get("saas_company_id")}
        values.update({k: _str(d.get(k)) for k in cls._STRINGS})
        values.update({k: _int(d.get(k)) for k in cls._INTS})
        values.update({k: _num(d.get(k)) for k in cls._NUMBERS})
        values.update({k: _bool(d.get(k)) for k in cls._BOOLS})
        values["associate"] = _map(d["associate"]) if isinstance(d.get("associate"), Mapping) else None
        return cls(**values)


@dataclass
class Pagination:
    """Page metadata; ``per_page`` is read as ``limit``; missing totals are derived."""

    page: int = 1
    limit: int = 0
    total: int = 0
    total_pages: int = 0
    has_prev: bool = False
    has_next: bool = False

    @classmethod
    def from_dict(cls, data: Any, *, default_limit: int = 0, count: int = 0) -> "Pagination":
        d = _map(data)
        page = max(_int(d.get("page")) or 1, 1)
        limit = _int(_first(d, "limit", "per_page")) or default_limit
        total = _int(d.get("total"))
        if total is None:
            total = count
        total_pages = _int(_first(d, "total_pages", "pages"))
        if total_pages is None:
            total_pages = math.ceil(total / limit) if limit > 0 else (1 if total else 0)
        has_prev = _bool(d.get("has_prev"))
        has_next = _bool(d.get("has_next"))
        return cls(
            page=page,
            limit=limit,
            total=total,
            total_pages=total_pages,
            has_prev=page > 1 if has_prev is None else has_prev,
            has_next=page < total_pages if has_next is None else has_next,
        )


@dataclass
class VoucherPage:
    """One page of ``vouchers.list``; iterate it for the vouchers."""

    success: bool = False
    message: str = ""
    vouchers: List[Voucher] = field(default_factory=list)
    pagination: Pagination = field(default_factory=Pagination)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any, *, default_limit: int = 0) -> "VoucherPage":
        d = _map(data)
        items = _first(d, "data", "vouchers")
        if isinstance(items, Mapping):  # {"data": {"vouchers": [...], "pagination": {...}}}
            nested = items
            items = _first(nested, "vouchers", "items", "data")
            d_pagination = nested.get("pagination", d.get("pagination"))
        else:
            d_pagination = d.get("pagination")
        vouchers = [Voucher.from_dict(v) for v in _maps(items)]
        return cls(
            success=bool(_bool(d.get("success"), False)),
            message=_str(d.get("message")) or "",
            vouchers=vouchers,
            pagination=Pagination.from_dict(d_pagination, default_limit=default_limit, count=len(vouchers)),
            raw=d,
        )

    def __iter__(self) -> Iterator[Voucher]:
        return iter(self.vouchers)


@dataclass
class VoucherValidation:
    """Outcome of ``vouchers.validate``; truthy when the voucher is valid.

    ``reason`` is HAVN's own ``message`` when it sent one (contract §11.7: the
    official SDK throws it away), ``raw`` HAVN's parsed body (``{}`` if none).
    """

    valid: bool
    status_code: int
    reason: str = ""
    error_type: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return self.valid

"""Typed results of the HAVN client, parsed tolerantly. No Flask.

HAVN's docs and its SDK disagree on many names (contract §11.7), so every
``from_dict`` ignores unknown keys, defaults missing ones, accepts the known
synonyms (``per_page``/``limit``, ``failed``/``errors``, top-level
``referral_code``/``user_id``) and keeps the response in ``.raw``.
Nothing here raises on a surprising shape.

Cost: ``raw`` *is* the parsed answer (the dict ``from_dict`` was given, not a
copy: do not change it), and the result classes with a ``raw`` read their
other fields from it on first access (:class:`_Deferred`), so a bulk sync of
thousands of members builds one small object per member and parses a row
only when it is read. Instances are slotted (no ``__dict__``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping as _Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, cast

__all__ = [
    "Associate",
    "User",
    "SyncResult",
    "BulkSummary",
    "BulkSyncResult",
    "BatchResult",
    "Transaction",
    "Commission",
    "TransactionResult",
    "Voucher",
    "Pagination",
    "VoucherPage",
    "VoucherValidation",
]

_T = TypeVar("_T")


def _slots(cls: Type[_T]) -> Type[_T]:
    """The dataclass ``cls`` rebuilt with ``__slots__`` for its fields (``dataclass(slots=True)`` before 3.10)."""
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    namespace = {k: v for k, v in vars(cls).items() if k not in names and k not in ("__dict__", "__weakref__")}
    namespace["__slots__"] = names
    slotted = type(cls.__name__, cls.__bases__, namespace)
    slotted.__qualname__ = cls.__qualname__
    return cast(Type[_T], slotted)


def _is_map(value: Any) -> bool:
    return type(value) is dict or isinstance(value, _Mapping)


def _map(value: Any) -> Dict[str, Any]:
    """``value`` itself when it is a dict (no copy), a dict of any other mapping, else ``{}``."""
    if type(value) is dict:
        return value
    return dict(value) if isinstance(value, _Mapping) else {}


def _maps(value: Any) -> List[Dict[str, Any]]:
    if not isinstance(value, (list, tuple)):
        return []
    return [item if type(item) is dict else dict(item) for item in value
            if type(item) is dict or isinstance(item, _Mapping)]


def _str(value: Any) -> Optional[str]:
    if type(value) is str:
        return value
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _int(value: Any) -> Optional[int]:
    """An integer from an int, an integral float or a numeric string; else ``None``."""
    if type(value) is int:
        return value
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
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int:
        return value
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
    if value is True or value is False:
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return default


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    """The first of ``keys`` whose value is not ``None`` (HAVN's synonyms)."""
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return value
    return None


class _Deferred:
    """Base of the results that keep ``raw``, parsed on first read.

    ``from_dict`` stores only ``raw``; the first read of any other field runs
    the class's ``_fill``, which sets them all from ``raw``, once. Calling the
    constructor sets every field at once, as for any dataclass.
    """

    __slots__ = ()

    @classmethod
    def from_dict(cls: Type[_T], data: Any) -> _T:
        """The result for HAVN's parsed ``data`` (kept as ``raw``, not copied); fields are read from it when used."""
        result = object.__new__(cls)
        result.raw = _map(data)  # type: ignore[attr-defined]
        return result

    def _fill(self, d: Dict[str, Any]) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        # Reached only when normal lookup failed: an unset slot of a deferred result, or no such attribute.
        if name == "raw" or name not in getattr(type(self), "__dataclass_fields__", ()):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self._fill(self.raw)  # type: ignore[attr-defined]
        return object.__getattribute__(self, name)


@_slots
@dataclass
class Associate(_Deferred):
    """A HAVN associate (a node of the referral tree)."""

    associate_id: Optional[str] = None
    associate_name: Optional[str] = None
    referral_code: Optional[str] = None
    type: Optional[str] = None
    is_active: Optional[bool] = None
    upline_id: Optional[str] = None
    role: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def _fill(self, d: Dict[str, Any]) -> None:
        self.associate_id = _str(_first(d, "associate_id", "id"))
        self.associate_name = _str(_first(d, "associate_name", "name"))
        self.referral_code = _str(d.get("referral_code"))
        self.type = _str(d.get("type"))
        self.is_active = _bool(d.get("is_active"))
        self.upline_id = _str(d.get("upline_id"))
        self.role = _str(d.get("role"))


@_slots
@dataclass
class User(_Deferred):
    """A HAVN user account."""

    id: Optional[str] = None
    email: Optional[str] = None
    name: Optional[str] = None
    is_active: Optional[bool] = None
    google_id: Optional[str] = None
    avatar: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def _fill(self, d: Dict[str, Any]) -> None:
        self.id = _str(_first(d, "id", "user_id"))
        self.email = _str(d.get("email"))
        self.name = _str(d.get("name"))
        self.is_active = _bool(d.get("is_active"))
        self.google_id = _str(d.get("google_id"))
        self.avatar = _str(_first(d, "avatar", "picture"))


@_slots
@dataclass
class SyncResult(_Deferred):
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

    def _fill(self, d: Dict[str, Any]) -> None:
        user = d.get("user")
        self.user = User.from_dict(user) if _is_map(user) else None
        associate = d.get("associate")
        self.associate = Associate.from_dict(associate) if _is_map(associate) else None
        self.success = bool(_bool(d.get("success"), False))
        self.message = _str(d.get("message")) or ""
        self.user_created = bool(_bool(d.get("user_created"), False))
        self.associate_created = bool(_bool(d.get("associate_created"), False))
        self.referral_code = _str(d.get("referral_code")) or (self.associate.referral_code if self.associate else None)
        self.user_id = _str(d.get("user_id")) or (self.user.id if self.user else None)

    @property
    def email(self) -> Optional[str]:
        """The synced user's email (``user.email`` or a bulk item's top-level ``email``)."""
        return (self.user.email if self.user else None) or _str(self.raw.get("email"))


@_slots
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


@_slots
@dataclass
class BulkSyncResult:
    """Answer to a bulk user sync, or the merge of several batches (see :meth:`merge`).

    ``errors`` items are ``{"index", "email", "error"}`` (new dicts: ``raw``
    keeps HAVN's own); ``index`` is the position in the list the caller
    passed (``None`` if HAVN sent none). ``results`` items are
    :class:`SyncResult`, each parsed when first read.
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
        errors = [{**item, "index": _int(item.get("index")), "email": item.get("email"),
                   "error": _str(_first(item, "error", "message")) or ""} for item in _maps(d.get("errors"))]
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
            merged.errors.extend(_rebased(part.errors, offset))
            if merged.referral_code is None and part.referral_code:
                merged.referral_code = part.referral_code
            if part.message and part.message not in messages:
                messages.append(part.message)
        merged.message = "; ".join(messages)
        return merged


def _rebased(errors: List[Dict[str, Any]], offset: int) -> List[Dict[str, Any]]:
    """Copies of a batch's error items with ``index`` counted from the start of the caller's list."""
    return [{**error, "index": error["index"] + offset} if error.get("index") is not None else dict(error)
            for error in errors]


@_slots
@dataclass
class BatchResult:
    """One completed batch of ``users.iter_sync_bulk``: progress, and that batch's rows.

    ``result`` is HAVN's answer for the batch (error indexes within the
    batch, as ``on_batch`` gets it); ``errors`` re-bases them into the
    caller's list, ``offset`` being the index there of the batch's first user.
    """

    batch_no: int
    total_batches: int
    offset: int
    size: int
    result: BulkSyncResult

    @property
    def results(self) -> List[SyncResult]:
        """This batch's synced users (each parsed when first read)."""
        return self.result.results

    @property
    def errors(self) -> List[Dict[str, Any]]:
        """This batch's failed users; ``index`` points into the list passed to ``iter_sync_bulk``."""
        return _rebased(self.result.errors, self.offset)

    @property
    def summary(self) -> BulkSummary:
        """HAVN's counts for this batch."""
        return self.result.summary

    @property
    def referral_code(self) -> Optional[str]:
        """The referral code HAVN returned for this batch (the first batch's links the later ones)."""
        return self.result.referral_code


@_slots
@dataclass
class Transaction(_Deferred):
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

    def _fill(self, d: Dict[str, Any]) -> None:
        self.transaction_id = _str(_first(d, "transaction_id", "id"))
        self.amount = _int(d.get("amount"))
        self.currency = _str(d.get("currency"))
        self.status = _str(d.get("status"))
        self.customer_type = _str(d.get("customer_type"))
        self.acquisition_method = _str(d.get("acquisition_method"))
        self.subtotal_transaction = _int(d.get("subtotal_transaction"))
        self.subtotal_discount = _int(d.get("subtotal_discount"))
        self.created_at = _str(d.get("created_at"))
        self.referral_code = _str(d.get("referral_code"))


@_slots
@dataclass
class Commission(_Deferred):
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

    def _fill(self, d: Dict[str, Any]) -> None:
        percentage = _num(d.get("percentage"))
        if percentage is None and _num(d.get("rate")) is not None:
            # TRANSACTION_WEBHOOK.md's ``rate`` is a fraction (0.05 = 5 %).
            percentage = round(_num(d["rate"]) * 100, 10)  # type: ignore[operator]
        self.percentage = percentage
        self.commission_id = _str(_first(d, "commission_id", "id"))
        self.associate_id = _str(d.get("associate_id"))
        self.referral_code = _str(d.get("referral_code"))
        self.level = _int(d.get("level"))
        self.amount = _int(d.get("amount"))
        self.type = _str(d.get("type"))
        self.direction = _str(d.get("direction"))
        self.status = _str(d.get("status"))


@_slots
@dataclass
class TransactionResult(_Deferred):
    """Answer to ``transactions.send``: the transaction and the commissions it produced."""

    success: bool = False
    message: str = ""
    transaction: Transaction = field(default_factory=Transaction)
    commissions: List[Commission] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def _fill(self, d: Dict[str, Any]) -> None:
        self.success = bool(_bool(d.get("success"), False))
        self.message = _str(d.get("message")) or ""
        self.transaction = Transaction.from_dict(d.get("transaction"))
        self.commissions = [Commission.from_dict(c) for c in _maps(d.get("commissions"))]

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


_VOUCHER_STRINGS = ("serial", "associate_id", "code", "type", "start_date", "end_date", "client_type",
                    "description", "created_by", "created_date", "updated_at", "currency",
                    "configured_currency", "display_currency", "affiliates_url", "affiliates_qr_image")
_VOUCHER_INTS = ("usage_limit", "current_usage", "min_purchase", "max_purchase", "remaining_usage")
_VOUCHER_NUMBERS = ("value", "creation_cost", "usage_percentage")
_VOUCHER_BOOLS = ("active", "is_expired", "is_valid")


@_slots
@dataclass
class Voucher(_Deferred):
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

    def _fill(self, d: Dict[str, Any]) -> None:
        for parse, names in ((_str, _VOUCHER_STRINGS), (_int, _VOUCHER_INTS), (_num, _VOUCHER_NUMBERS),
                             (_bool, _VOUCHER_BOOLS)):
            for name in names:
                object.__setattr__(self, name, parse(d.get(name)))
        self.saas_company_id = d.get("saas_company_id")
        associate = d.get("associate")
        self.associate = _map(associate) if _is_map(associate) else None


@_slots
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


@_slots
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
        if isinstance(items, _Mapping):  # {"data": {"vouchers": [...], "pagination": {...}}}
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


@_slots
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

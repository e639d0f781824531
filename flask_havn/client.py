"""HAVNClient: the HAVN API as Python calls (users, transactions, vouchers, auth). No Flask.

Every method validates its payload with :mod:`flask_havn.rules` first and
raises :class:`HAVNValidationError` naming the field before anything is sent;
then it goes through a :class:`~flask_havn.transport.Transport` and returns a
typed result from :mod:`flask_havn.results`.
"""
from __future__ import annotations

import datetime
import re
from collections.abc import Mapping as _Mapping
from collections.abc import Sequence as _Sequence
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import rules
from .errors import HAVNAPIError, HAVNConfigError, HAVNError, HAVNValidationError
from .results import BatchResult, BulkSyncResult, SyncResult, TransactionResult, VoucherPage, VoucherValidation
from .signing import canonical_json
from .transport import DEFAULT_BASE_URL, Transport, derived_idempotency_key

__all__ = ["HAVNClient", "UsersResource", "TransactionsResource", "VouchersResource", "AuthResource"]

API = "/api/v1/webhook"
#: Most users HAVN accepts in one bulk user-sync request (contract §3.5).
MAX_BULK_SIZE = rules.MAX_BULK_SIZE


def _drop_none(payload: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in payload.items() if v is not None}


def _optional_str(value: Any, field: str, *, max_length: Optional[int] = None, strip: bool = True) -> Optional[str]:
    """``None`` or blank → ``None``; else a string (stripped) of at most ``max_length``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise HAVNValidationError(field, f"must be a string, not {type(value).__name__}")
    text = value.strip() if strip else value
    if not text.strip():
        return None
    if max_length is not None and len(text) > max_length:
        raise HAVNValidationError(field, f"must be at most {max_length} characters")
    return text


class _Resource:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport


class UsersResource(_Resource):
    """``POST /api/v1/webhook/user-sync``: single and bulk user sync (deprecated by HAVN in v1.3)."""

    def __init__(self, transport: Transport, *, bulk_max_size: int = MAX_BULK_SIZE) -> None:
        super().__init__(transport)
        self._bulk_max_size = bulk_max_size

    def sync(
        self,
        email: str,
        name: str,
        *,
        is_owner: bool = False,
        upline_code: Optional[str] = None,
        referral_code: Optional[str] = None,
        create_associate: bool = True,
        google_id: Optional[str] = None,
        picture: Optional[str] = None,
        avatar: Optional[str] = None,
        country_code: Optional[str] = None,
    ) -> SyncResult:
        """Create or update one HAVN user (and, by default, its associate).

        ``is_owner`` and ``create_associate`` are always sent; ``None`` values are
        dropped. Codes are stripped and must be 3..50 characters.
        """
        payload = _drop_none({
            "email": rules.check_email(email, "email"),
            "name": rules.check_text(name, "name", max_length=200),
            "google_id": _optional_str(google_id, "google_id", strip=False),
            "picture": _optional_str(picture, "picture", strip=False),
            "avatar": _optional_str(avatar, "avatar", strip=False),
            "upline_code": rules.optional_code(upline_code, "upline_code"),
            "referral_code": rules.optional_code(referral_code, "referral_code"),
            "country_code": None if country_code is None else rules.check_country_code(country_code),
            "create_associate": rules.check_bool(create_associate, "create_associate"),
            "is_owner": rules.check_bool(is_owner, "is_owner"),
        })
        return SyncResult.from_dict(self._transport.request("POST", f"{API}/user-sync", payload=payload))

    @staticmethod
    def _check_bulk_user(index: int, user: Any) -> None:
        """Raise :class:`HAVNValidationError` naming ``users[index].<field>`` if ``user`` breaks a rule."""
        if type(user) is not dict and not isinstance(user, _Mapping):
            raise HAVNValidationError(f"users[{index}]", "must be a dict with at least email and name")
        try:
            rules.check_email(user.get("email"), "email")
            rules.check_text(user.get("name"), "name", max_length=200)
            if len(user) > 2:  # more than email and name
                for key, value in user.items():
                    check = _USER_RULES.get(key)
                    if check is not None and value is not None:
                        check(value, key)
        except HAVNValidationError as exc:
            raise HAVNValidationError(f"users[{index}].{exc.field}", exc.reason) from None

    @staticmethod
    def _users_json(users: Sequence[Mapping[str, Any]], batch_size: int) -> List[bytes]:
        """Each batch's users as a canonical JSON array: the JSON check and the bytes sent, made once."""
        arrays: List[bytes] = []
        for start in range(0, len(users), batch_size):
            batch = [u if type(u) is dict else dict(u) for u in users[start:start + batch_size]]
            try:
                arrays.append(canonical_json(batch))
            except (TypeError, ValueError):
                for index, user in enumerate(batch, start):
                    try:
                        canonical_json(user)
                    except (TypeError, ValueError):
                        raise HAVNValidationError(f"users[{index}]", "must hold only JSON values (strings, numbers, "
                                                  "booleans, null, lists, dicts; no NaN)") from None
                raise  # pragma: no cover - a batch fails only through one of its users
        return arrays

    def iter_sync_bulk(
        self,
        users: Sequence[Mapping[str, Any]],
        *,
        upline_code: Optional[str] = None,
        referral_code: Optional[str] = None,
        is_owner: Optional[bool] = None,
        create_associate: Optional[bool] = None,
        batch_size: Optional[int] = None,
    ) -> Iterator[BatchResult]:
        """Sync many users in batches, yielding a :class:`BatchResult` as each batch completes.

        The streaming form of :meth:`sync_bulk` (same arguments but
        ``on_batch``, same rules and wire): nothing is merged or kept, so a sync
        of 100,000 members holds one batch's answer at a time. Every user is
        validated, and every batch serialised, when this is called, before the
        first request; the requests go out as you iterate (stop iterating and
        the rest are not sent). A failing batch raises its error from the
        iteration; the batches already yielded stay synced.
        """
        size, arrays, shared = self._prepare_bulk(users, upline_code, referral_code, is_owner, create_associate,
                                                  batch_size)
        return self._send_batches(len(users), size, arrays, shared)

    def _prepare_bulk(
        self,
        users: Sequence[Mapping[str, Any]],
        upline_code: Optional[str],
        referral_code: Optional[str],
        is_owner: Optional[bool],
        create_associate: Optional[bool],
        batch_size: Optional[int],
    ) -> Tuple[int, List[bytes], Dict[str, Any]]:
        """Validate a bulk sync's arguments; the batch size, each batch's users JSON and the shared fields."""
        if isinstance(users, (str, bytes)) or isinstance(users, _Mapping) or not isinstance(users, _Sequence):
            raise HAVNValidationError("users", "must be a list of user dicts")
        if not users:
            raise HAVNValidationError("users", "must not be empty; pass at least one user dict")
        top = self._bulk_max_size
        if batch_size is None:
            batch_size = top
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= top:
            raise HAVNValidationError("batch_size", f"must be an integer from 1 to {top} (HAVN accepts at most "
                                      f"{top} users per request; HAVN_BULK_MAX_SIZE sets the limit)")
        for index, user in enumerate(users):
            self._check_bulk_user(index, user)
        shared = {
            "upline_code": rules.optional_code(upline_code, "upline_code"),
            "referral_code": rules.optional_code(referral_code, "referral_code"),
            "is_owner": None if is_owner is None else rules.check_bool(is_owner, "is_owner"),
            "create_associate": (None if create_associate is None
                                 else rules.check_bool(create_associate, "create_associate")),
        }
        return batch_size, self._users_json(users, batch_size), shared

    def _send_batches(self, count: int, batch_size: int, arrays: List[bytes],
                      shared: Dict[str, Any]) -> Iterator[BatchResult]:
        """Send the prepared batches one by one; batches after the first take the code the first returned."""
        total = len(arrays)
        arrays.reverse()  # pop() from the end hands each batch over and lets its bytes go once sent
        for number in range(1, total + 1):
            # canonical_json sorts keys and "users" sorts after every shared key: append it to the shared object.
            head = canonical_json(_drop_none(shared))
            body = (head[:-1] + b"," if len(head) > 2 else b"{") + b'"users":' + arrays.pop() + b"}"
            answer = self._transport.request("POST", f"{API}/user-sync", body=body)
            result = BulkSyncResult.from_dict(answer)
            if shared["referral_code"] is None and result.referral_code:
                shared["referral_code"] = result.referral_code
            offset = (number - 1) * batch_size
            yield BatchResult(batch_no=number, total_batches=total, offset=offset,
                              size=min(batch_size, count - offset), result=result)

    def sync_bulk(
        self,
        users: Sequence[Mapping[str, Any]],
        *,
        upline_code: Optional[str] = None,
        referral_code: Optional[str] = None,
        is_owner: Optional[bool] = None,
        create_associate: Optional[bool] = None,
        batch_size: Optional[int] = None,
        on_batch: Optional[Callable[[int, int, BulkSyncResult], None]] = None,
    ) -> BulkSyncResult:
        """Sync many users in batches of ``batch_size`` and merge the answers.

        ``batch_size`` defaults to, and may not exceed, the client's
        ``bulk_max_size`` (50, HAVN's documented maximum, unless configured).

        Every user is validated before the first request (errors name e.g.
        ``users[3].email``); user dicts are sent as given, per-user values
        overriding the shared ones. Batches after the first carry, as shared
        ``referral_code``, the code the first batch returned (unless the caller
        gave one), so the whole list lands under one associate. Error indexes
        in the result point into ``users``. ``on_batch(batch_no, total_batches,
        batch_result)`` runs after each batch (``batch_no`` from 1). If a batch
        fails, the error raised carries ``.partial_result`` (the merge of the
        batches that succeeded, or ``None``). The result keeps every member's
        row: for very large lists use :meth:`iter_sync_bulk`, which keeps none.
        """
        if on_batch is not None and not callable(on_batch):
            raise HAVNValidationError("on_batch", "must be a callable(batch_no, total_batches, result)")
        batches = self.iter_sync_bulk(users, upline_code=upline_code, referral_code=referral_code,
                                      is_owner=is_owner, create_associate=create_associate, batch_size=batch_size)
        parts: List[Tuple[int, BulkSyncResult]] = []
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except HAVNError as exc:
                exc.partial_result = BulkSyncResult.merge(parts) if parts else None  # type: ignore[attr-defined]
                raise
            parts.append((batch.offset, batch.result))
            if on_batch is not None:
                on_batch(batch.batch_no, batch.total_batches, batch.result)
        return BulkSyncResult.merge(parts)


def _check_string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise HAVNValidationError(field, "must be a string")
    return value


#: The optional per-user keys of a bulk sync with a rule of their own (others are sent as given).
_USER_RULES: Dict[str, Callable[[Any, str], Any]] = {
    "upline_code": rules.check_code,
    "referral_code": rules.check_code,
    "country_code": rules.check_country_code,
    "is_owner": rules.check_bool,
    "create_associate": rules.check_bool,
    "google_id": _check_string,
    "picture": _check_string,
    "avatar": _check_string,
}


class TransactionsResource(_Resource):
    """``POST /api/v1/webhook/transaction``: record a sale and distribute commission."""

    def __init__(self, transport: Transport, *, default_payment_gateway: Optional[str] = None) -> None:
        super().__init__(transport)
        self._default_payment_gateway = default_payment_gateway

    def send(
        self,
        amount: int,
        *,
        referral_code: Optional[str] = None,
        currency: str = "USD",
        payment_gateway_transaction_id: Optional[str] = None,
        payment_gateway: Optional[str] = None,
        customer_email: Optional[str] = None,
        promo_code: Optional[str] = None,
        subtotal_transaction: Optional[int] = None,
        customer_type: Optional[str] = None,
        is_recurring: Optional[bool] = None,
        transaction_type: Optional[str] = None,
        invoice_id: Optional[str] = None,
        customer_id: Any = None,
        custom_fields: Optional[Mapping[str, Any]] = None,
        description: Optional[str] = None,
        server_side_conversion: Optional[bool] = None,
        idempotency_key: Optional[str] = None,
        default_payment_gateway: Optional[str] = None,
        test_mode: Optional[bool] = None,
    ) -> TransactionResult:
        """Send one completed payment to HAVN; return the transaction and its commissions.

        ``test_mode`` sends this call in (``True``) or out of (``False``) HAVN's
        test mode, whatever the client's own (``None``, the default: the
        client's); the outbox passes the mark each payment was recorded with.

        ==============================  =====================================================
        argument                        on the wire
        ==============================  =====================================================
        amount                          ``amount``: int minor units of ``currency`` after
                                        discount, 1..1,000,000,000
        referral_code                   ``referral_code``: stripped, UPPER-cased, 3..50;
                                        omitted when ``None`` (the sale is platform revenue)
        currency                        ``currency``: stripped, UPPER-cased, one of HAVN's 26
                                        or BHD/JOD/KWD/OMR/TND/CLP/ISK (HAVN's minor-unit
                                        table; a real HAVN may refuse those); always sent
                                        (default ``USD``)
        payment_gateway_transaction_id  same name; required, not blank, ≤ 200, sent as given
        payment_gateway                 same name; stripped, UPPER-cased, ≤ 100; falls back to
                                        ``default_payment_gateway``, then to the client's
                                        (``HAVN_PAYMENT_GATEWAY``); one of them is required
        customer_email                  same name; required, HAVN's email pattern, unchanged
        promo_code                      same name, stripped, ≤ 100; sent only when it starts
                                        with ``HAVN-`` (any case); a local code is dropped
        subtotal_transaction            same name; amount rules and ≥ ``amount``
        customer_type                   same name; ``NEW_CUSTOMER``/``RECURRING`` (any case);
                                        blank → omitted (HAVN then detects it)
        is_recurring                    not a wire field: ``True`` → ``customer_type=RECURRING``,
                                        ``False`` → ``NEW_CUSTOMER``; contradicting an explicit
                                        ``customer_type`` is an error
        transaction_type                same name; free text, stripped, blank → omitted
        invoice_id                      same name; a string, stripped, blank → omitted, ≤ 100
        customer_id                     **not sent** (HAVN dropped the field; accepted only so
                                        older calls keep working — put it in
                                        ``custom_fields`` yourself if HAVN should see it)
        custom_fields                   same name; ≤ 3 entries, string keys, scalar values
        description                     same name; free text, blank → omitted
        server_side_conversion          same name, sent only as ``true``. ``None`` (default)
                                        means ``True`` when ``currency`` is not USD: a non-USD
                                        amount is sent for server-side conversion unless the
                                        caller converts it, i.e. passes ``False`` (then it is
                                        sent as is, with no flag)
        idempotency_key                 ``Idempotency-Key`` header; default
                                        ``"txn-" + sha256(payment_gateway_transaction_id)[:32]``
                                        so a re-send days later carries the same key
        ==============================  =====================================================
        """
        amount = rules.check_amount(amount, "amount")
        code = rules.optional_code(referral_code, "referral_code", upper=True)
        currency = rules.check_currency(currency, "currency")
        if payment_gateway_transaction_id is None:
            raise HAVNValidationError("payment_gateway_transaction_id",
                                      "is required: pass the payment gateway's own id for this charge "
                                      "(e.g. Stripe's pi_... id) so HAVN can recognise a re-send")
        gateway_id = rules.check_text(payment_gateway_transaction_id, "payment_gateway_transaction_id",
                                      max_length=200)
        gateway = next((g for g in (payment_gateway, default_payment_gateway, self._default_payment_gateway)
                        if g is not None), None)
        if gateway is None:
            raise HAVNValidationError("payment_gateway",
                                      "is required: pass payment_gateway='STRIPE' (or your gateway's name), "
                                      "or set HAVN_PAYMENT_GATEWAY")
        gateway = rules.check_text(gateway, "payment_gateway", max_length=100, strip=True).upper()
        if customer_email is None:
            raise HAVNValidationError("customer_email", "is required: pass the paying customer's email address")
        customer_email = rules.check_email(customer_email, "customer_email")

        promo = _optional_str(promo_code, "promo_code", max_length=100)
        if promo is not None and not promo.upper().startswith("HAVN-"):
            promo = None  # a local (non-HAVN) voucher: HAVN does not know it
        subtotal = None
        if subtotal_transaction is not None:
            subtotal = rules.check_amount(subtotal_transaction, "subtotal_transaction")
            if subtotal < amount:
                raise HAVNValidationError("subtotal_transaction",
                                          "must be at least amount (it is the price before discount)")
        ctype = _optional_str(customer_type, "customer_type")
        if ctype is not None:
            ctype = ctype.upper()
            if ctype not in rules.CUSTOMER_TYPES:
                raise HAVNValidationError("customer_type", "must be NEW_CUSTOMER or RECURRING")
        if is_recurring is not None:
            implied = "RECURRING" if rules.check_bool(is_recurring, "is_recurring") else "NEW_CUSTOMER"
            if ctype is not None and ctype != implied:
                raise HAVNValidationError("is_recurring", f"contradicts customer_type={ctype}; pass only one of them")
            ctype = implied
        fields = None if custom_fields is None else rules.check_custom_fields(custom_fields, "custom_fields")
        if server_side_conversion is None:
            convert = currency != "USD"
        else:
            convert = rules.check_bool(server_side_conversion, "server_side_conversion")
        if idempotency_key is None:
            key = derived_idempotency_key("txn", gateway_id)
        else:
            key = rules.check_text(idempotency_key, "idempotency_key", max_length=255, strip=True)

        payload = _drop_none({
            "amount": amount,
            "currency": currency,
            "payment_gateway_transaction_id": gateway_id,
            "payment_gateway": gateway,
            "customer_email": customer_email,
            "referral_code": code,
            "promo_code": promo,
            "subtotal_transaction": subtotal,
            "customer_type": ctype,
            "custom_fields": fields,
            "invoice_id": _optional_str(invoice_id, "invoice_id", max_length=100),
            "transaction_type": _optional_str(transaction_type, "transaction_type", max_length=100),
            "description": _optional_str(description, "description", strip=False),
            "server_side_conversion": True if convert else None,
        })
        answer = self._transport.request("POST", f"{API}/transaction", payload=payload, idempotency_key=key,
                                         test_mode=None if test_mode is None else rules.check_bool(test_mode,
                                                                                                    "test_mode"))
        return TransactionResult.from_dict(answer)


_VOUCHER_TYPES = ("DISCOUNT_PERCENTAGE", "DISCOUNT_FIXED")
_SORT_BY = ("code", "type", "value", "start_date", "end_date", "created_date", "current_usage",
            "usage_limit", "min_purchase")
_BOOL_FILTERS = ("active", "is_valid", "is_expired")
_RANGE_FILTERS = (("min_value", "max_value"), ("min_purchase_from", "min_purchase_to"),
                  ("usage_limit_from", "usage_limit_to"))
_DATE_FILTERS = ("start_date_from", "start_date_to", "end_date_from", "end_date_to")
_DATETIME_FILTERS = ("created_from", "created_to")
_ENUM_FILTERS: Dict[str, Tuple[str, ...]] = {
    "type": _VOUCHER_TYPES,
    "client_type": rules.CUSTOMER_TYPES,
    "sort_by": _SORT_BY,
    "sort_order": ("asc", "desc"),
}
#: Every filter ``vouchers.list`` accepts besides ``page`` and ``per_page``.
VOUCHER_FILTERS = frozenset(
    _BOOL_FILTERS + tuple(n for pair in _RANGE_FILTERS for n in pair) + _DATE_FILTERS + _DATETIME_FILTERS
    + tuple(_ENUM_FILTERS) + ("currency", "display_currency", "search")
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def _check_date(value: Any, field: str, *, with_time: bool) -> str:
    if isinstance(value, datetime.datetime):
        if not with_time:
            raise HAVNValidationError(field, "must be a date (YYYY-MM-DD), not a datetime")
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, datetime.date):
        return value.isoformat()
    shape = "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS" if with_time else "YYYY-MM-DD"
    if isinstance(value, str):
        text = value.strip()
        for pattern, fmt in ((_DATE, "%Y-%m-%d"), (_DATETIME, "%Y-%m-%dT%H:%M:%S")):
            if pattern.match(text) and (with_time or pattern is _DATE):
                try:
                    datetime.datetime.strptime(text, fmt)
                except ValueError:
                    break
                return text
    raise HAVNValidationError(field, f"must be a real date written {shape}")


class VouchersResource(_Resource):
    """HAVN vouchers: validate one, list the company's."""

    def validate(
        self, voucher_code: str, amount: Optional[int] = None, currency: Optional[str] = None
    ) -> VoucherValidation:
        """Ask HAVN whether ``voucher_code`` can be used (for ``amount`` in ``currency``).

        Returns a :class:`VoucherValidation` that is truthy when valid. A 400
        (expired, used up, inactive), 404 (unknown) or 422 (amount below the
        minimum) is an *answer*, not an error: it comes back with ``valid=False``
        and HAVN's reason. Network, auth and server errors still raise.
        """
        payload = _drop_none({
            "voucher_code": rules.check_text(voucher_code, "voucher_code", max_length=100),
            "amount": None if amount is None else rules.check_amount(amount, "amount"),
            "currency": None if currency is None else rules.check_currency(currency, "currency"),
        })
        try:
            answer = self._transport.request("POST", f"{API}/voucher/validate", payload=payload)
        except HAVNAPIError as exc:
            if exc.status_code not in (400, 404, 422):
                raise
            body = dict(exc.response or {})
            default = {
                400: "Voucher invalid (expired, used up, or inactive)",
                404: "Voucher not found",
                422: "Amount does not meet voucher requirements",
            }[exc.status_code]  # type: ignore[index]
            reason = body.get("message")
            return VoucherValidation(
                valid=False, status_code=exc.status_code,  # type: ignore[arg-type]
                reason=str(reason) if reason else default, error_type=exc.error_type, raw=body,
            )
        reason = answer.get("message")
        return VoucherValidation(valid=True, status_code=200, reason=str(reason) if reason else "Voucher is valid",
                                 raw=answer)

    def list(self, *, page: int = 1, per_page: int = 10, **filters: Any) -> VoucherPage:
        """One page of the company's HAVN vouchers (``GET /vouchers``).

        ``page`` ≥ 1, ``per_page`` 1..100; filters (``None`` ones are dropped):
        ``active``/``is_valid``/``is_expired`` (bool), ``type``, ``client_type``,
        ``currency``, ``display_currency``, ``search``, date ranges
        ``start_date_from/_to``, ``end_date_from/_to`` (YYYY-MM-DD or ``date``),
        ``created_from/_to`` (also ``YYYY-MM-DDTHH:MM:SS``), integer ranges
        ``min_value/max_value``, ``min_purchase_from/_to``, ``usage_limit_from/_to``,
        ``sort_by`` and ``sort_order`` (asc|desc).
        """
        for name, value, top in (("page", page, None), ("per_page", per_page, 100)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (top and value > top):
                raise HAVNValidationError(name, "must be an integer of at least 1" +
                                          (f" and at most {top}" if top else ""))
        unknown = sorted(set(filters) - VOUCHER_FILTERS)
        if unknown:
            raise HAVNValidationError(unknown[0], "is not a voucher filter; use one of "
                                      + ", ".join(sorted(VOUCHER_FILTERS)))
        params: Dict[str, Any] = {"page": page, "per_page": per_page}
        for name, value in filters.items():
            if value is None:
                continue
            if name in _BOOL_FILTERS:
                params[name] = rules.check_bool(value, name)
            elif name in _ENUM_FILTERS:
                allowed = _ENUM_FILTERS[name]
                text = value.strip() if isinstance(value, str) else None
                text = (text.lower() if name in ("sort_order", "sort_by") else text.upper()) if text else None
                if text not in allowed:
                    raise HAVNValidationError(name, f"must be one of {', '.join(allowed)}")
                params[name] = text
            elif name in ("currency", "display_currency"):
                params[name] = rules.check_currency(value, name)
            elif name == "search":
                text = _optional_str(value, name, max_length=200)
                if text is not None:
                    params[name] = text
            elif name in _DATE_FILTERS or name in _DATETIME_FILTERS:
                params[name] = _check_date(value, name, with_time=name in _DATETIME_FILTERS)
            else:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise HAVNValidationError(name, "must be a whole number of 0 or more")
                params[name] = value
        for low, high in _RANGE_FILTERS + (("start_date_from", "start_date_to"), ("end_date_from", "end_date_to"),
                                           ("created_from", "created_to")):
            if low in params and high in params and params[low] > params[high]:
                raise HAVNValidationError(low, f"must not be greater than {high}")
        answer = self._transport.request("GET", f"{API}/vouchers", params=params)
        return VoucherPage.from_dict(answer, default_limit=per_page)


class AuthResource(_Resource):
    """``POST /api/v1/webhook/login``: single sign-on into the HAVN dashboard."""

    def login(self, email: str) -> str:
        """Return the one-time HAVN URL that logs the user with ``email`` in (redirect them there)."""
        if not isinstance(email, str) or "@" not in email:
            raise HAVNValidationError("email", "must be the user's email address (containing @)")
        address = email.strip().lower()
        answer = self._transport.request("POST", f"{API}/login", payload={"email": address})
        data = answer.get("data")
        url = data.get("redirect_url") if isinstance(data, Mapping) else None
        if not isinstance(url, str) or not url.strip():
            url = answer.get("redirect_url")  # tolerate a flat answer
        if not isinstance(url, str) or not url.strip():
            raise HAVNAPIError("HAVN answered the login without a redirect_url; check that the user exists "
                               "in HAVN and is active, or contact HAVN support.", response=answer)
        return url


class HAVNClient:
    """The HAVN API. Pass credentials, or a ready :class:`Transport` (the Flask extension does).

    ``timeout`` is the most one attempt may take in all (connect, send and the
    whole answer); with ``max_retries`` and the waits between attempts, a call
    takes at most ``client.transport.max_call_seconds()``.

    Client options (allowed with either): ``default_payment_gateway`` — the
    gateway label ``transactions.send`` uses when a call names none;
    ``bulk_max_size`` — users per bulk-sync request, the default and the cap
    of ``sync_bulk(batch_size=...)`` (50). Any other keyword goes to
    :class:`Transport` (``max_total_wait``, ``session``, ``sleep``, ``clock``,
    ``jitter``). Usable as a context manager; :meth:`close` closes the
    transport only when this client created it.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        webhook_secret: Optional[str] = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        test_mode: bool = False,
        *,
        transport: Optional[Transport] = None,
        default_payment_gateway: Optional[str] = None,
        bulk_max_size: int = MAX_BULK_SIZE,
        **transport_options: Any,
    ) -> None:
        if isinstance(bulk_max_size, bool) or not isinstance(bulk_max_size, int) or bulk_max_size < 1:
            raise HAVNConfigError("bulk_max_size must be a whole number of at least 1 (HAVN_BULK_MAX_SIZE)")
        if default_payment_gateway is not None:
            try:
                rules.check_text(default_payment_gateway, "payment_gateway", max_length=100)
            except HAVNValidationError as exc:
                raise HAVNConfigError(f"default_payment_gateway {exc.reason} (HAVN_PAYMENT_GATEWAY)") from None
        if transport is not None:
            if api_key is not None or webhook_secret is not None or transport_options:
                raise HAVNConfigError("pass either transport=... or credentials and transport options, not both")
            self._owns_transport = False
        else:
            for name, value in (("api_key", api_key), ("webhook_secret", webhook_secret)):
                if value is None or (isinstance(value, str) and not value.strip()):
                    raise HAVNConfigError(
                        f"{name} is missing: pass HAVNClient({name}=...) (the Flask extension reads "
                        f"HAVN_{name.upper()} for you)")
            allowed = {"max_total_wait", "session", "sleep", "clock", "jitter"}
            unknown = sorted(set(transport_options) - allowed)
            if unknown:
                raise HAVNConfigError(f"unknown HAVNClient option(s): {', '.join(unknown)}; "
                                      f"allowed: {', '.join(sorted(allowed))}")
            transport = Transport(
                api_key=api_key, webhook_secret=webhook_secret,  # type: ignore[arg-type]
                base_url=base_url, timeout=timeout, max_retries=max_retries,
                backoff_factor=backoff_factor, test_mode=test_mode, **transport_options,
            )
            self._owns_transport = True
        self.transport = transport
        self.users = UsersResource(transport, bulk_max_size=bulk_max_size)
        self.transactions = TransactionsResource(transport, default_payment_gateway=default_payment_gateway)
        self.vouchers = VouchersResource(transport)
        self.auth = AuthResource(transport)

    @property
    def test_mode(self) -> bool:
        """Whether requests carry ``X-Test-Mode: true`` (HAVN validates but persists nothing)."""
        return self.transport.test_mode

    def close(self) -> None:
        """Release connections (only of a transport this client created)."""
        if self._owns_transport:
            self.transport.close()

    def __enter__(self) -> "HAVNClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HAVNClient(base_url={self.transport.base_url!r}, test_mode={self.transport.test_mode!r})"

"""HAVN's inbound events without Flask: the envelope, matching a payment, applying an event.

The pure half of the webhook receiver (webhook-events.md): :func:`parse_envelope`
turns verified body bytes into an :class:`Event` (or raises
:class:`EnvelopeError`, answered 400, also for a body nested deeper than
``rules.MAX_JSON_DEPTH``, an integer no ``BIGINT`` column can hold, an amount
outside 0..2**63-1, or a lone surrogate); :func:`check_columns` refuses
text wider than its column, or with a NUL where a text column gets it; :func:`find_payment` matches an event to the
host's Payment (a test-mode event only a test-mode one); :func:`apply_event`
writes what the event says onto it.
No commit happens here: the caller owns the transaction.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import sqlalchemy as sa

from . import rules
from .currency import FAILURE_KEYS, failure_details
from .errors import HAVNValidationError
from .models import column_length

__all__ = [
    "Event",
    "EnvelopeError",
    "parse_envelope",
    "check_columns",
    "find_payment",
    "apply_event",
    "event_changes",
    "EVENT_COLUMNS",
    "commissions_of",
    "reason_of",
    "COMMISSION_DISTRIBUTED",
    "CONVERSION_FAILED",
    "KNOWN_TYPES",
    "MAX_ID_LENGTH",
    "MAX_INT",
]

COMMISSION_DISTRIBUTED = "commission.distributed"
CONVERSION_FAILED = "transaction.conversion_failed"
#: Event types this version acts on; any other verified type is stored as ``ignored``.
KNOWN_TYPES = (COMMISSION_DISTRIBUTED, CONVERSION_FAILED)
#: Longest event id and type stored (the width of ``havn_webhook_events.id`` / ``.type``).
MAX_ID_LENGTH = 100
_MAX_CREATED_AT = 40
#: Largest integer an envelope may carry anywhere (and smallest, negated minus one): a signed 64-bit
#: ``BIGINT``. Beyond it a column write overflows, and the event would fail on every retry.
MAX_INT = rules.MAX_INT64
#: Money fields (paths in ``data``) written to ``BIGINT`` columns: an integer there must be 0..MAX_INT.
AMOUNT_PATHS = (
    ("total_commission",), ("transaction", "amount"), ("transaction", "amount_usd"),
    ("original_amount",), ("submitted_amount",), ("expected_amount",),
)
#: Keys of a conversion failure copied into ``Payment.havn_details``.
CONVERSION_DETAIL_KEYS = FAILURE_KEYS


class EnvelopeError(ValueError):
    """The verified body is not a valid event envelope (answered 400); the text says why."""


@dataclass(frozen=True)
class Event:
    """One HAVN event as receivers see it (the ``event`` keyword of every webhook signal).

    ``created_at`` is the envelope's ISO 8601 text (``None`` when the sender
    gave none); ``data`` is the event's ``data`` object; ``envelope`` is the
    whole parsed body, as stored in ``havn_webhook_events.payload``.
    """

    id: str
    type: str
    created_at: Optional[str]
    test_mode: bool
    data: Dict[str, Any] = field(repr=False)
    envelope: Dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_envelope(cls, envelope: Any, *, expected_id: Optional[str] = None) -> "Event":
        """Check ``envelope`` (a parsed body) and build the event; raises :class:`EnvelopeError`."""
        return cls._checked(envelope, expected_id, walk=True)

    @classmethod
    def _checked(cls, envelope: Any, expected_id: Optional[str], *, walk: bool) -> "Event":
        """:meth:`from_envelope`; ``walk=False`` skips the scan of every value for wide integers and lone
        surrogates, for a body whose text shows it can hold neither (see :func:`parse_envelope`)."""
        if not isinstance(envelope, dict):
            raise EnvelopeError("the body is not a JSON object")
        missing = [key for key in ("id", "type", "data") if key not in envelope]
        if missing:
            raise EnvelopeError(f"the envelope lacks {', '.join(missing)}")
        event_id, event_type, data = envelope["id"], envelope["type"], envelope["data"]
        if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH:
            raise EnvelopeError(f"id must be a non-empty string of at most {MAX_ID_LENGTH} characters")
        if expected_id is not None and event_id != expected_id:
            raise EnvelopeError("the envelope id differs from the webhook-id header")
        if not isinstance(event_type, str) or not event_type or len(event_type) > MAX_ID_LENGTH:
            raise EnvelopeError(f"type must be a non-empty string of at most {MAX_ID_LENGTH} characters")
        if not isinstance(data, dict):
            raise EnvelopeError("data must be a JSON object")
        created_at = envelope.get("created_at")
        if created_at is not None and (not isinstance(created_at, str) or len(created_at) > _MAX_CREATED_AT):
            raise EnvelopeError(f"created_at must be an ISO 8601 string of at most {_MAX_CREATED_AT} characters")
        test_mode = envelope.get("test_mode", False)
        if test_mode is None:
            test_mode = False
        if not isinstance(test_mode, bool):
            raise EnvelopeError("test_mode must be true or false")
        _check_values(envelope, data, walk=walk)
        return cls(id=event_id, type=event_type, created_at=created_at, test_mode=test_mode,
                   data=data, envelope=envelope)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_values(envelope: Dict[str, Any], data: Dict[str, Any], *, walk: bool = True) -> None:
    """Refuse integers no ``BIGINT`` can hold anywhere, out-of-range money fields, and a lone
    surrogate in any key or value (no text: nothing can store, log or render it). A NUL is kept (the
    JSON column stores it escaped); :func:`check_columns` refuses it where a text column would get it.

    A sender bug (say ``10**30`` cents) must be answered 400 once, not stored
    and then fail with an overflow, answered 500 on every retry for days.
    """
    amounts: List[Tuple[str, Any]] = []
    for path in AMOUNT_PATHS:
        node: Any = data
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        amounts.append((".".join(path), node))
    commissions = data.get("commissions")
    if isinstance(commissions, list):
        amounts.extend(("commissions.amount", item.get("amount")) for item in commissions if isinstance(item, dict))
    for name, value in amounts:
        if _is_int(value) and not 0 <= value <= MAX_INT:
            raise EnvelopeError(f"data.{name} must be an amount from 0 to {MAX_INT}")
    stack: List[Any] = [envelope] if walk else []
    while stack:  # iterative, whatever the depth (load_json bounds it, a caller's dict may not be)
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
            stack.extend(value.keys())
        elif isinstance(value, list):
            stack.extend(value)
        elif _is_int(value) and not rules.MIN_INT64 <= value <= MAX_INT:
            raise EnvelopeError("an integer in the envelope does not fit in 64 bits")
        elif isinstance(value, str):
            try:
                rules.check_unicode(value, "text")
            except HAVNValidationError as exc:
                raise EnvelopeError(f"a text in the envelope {exc.reason}") from None


#: What a JSON text needs to hold an integer beyond 64 bits (19 digits or more in a row) or a lone
#: surrogate (a backslash-u escape of D800–DFFF; strict UTF-8 has no other way to carry one). A body without
#: it needs no scan of its values; one with it (say a 20-digit id in a string) is scanned.
_MAY_HOLD_WIDE_INT_OR_SURROGATE = re.compile(rb"[0-9]{19}|\\u[dD][89a-fA-F]")


def parse_envelope(body: bytes, expected_id: Optional[str] = None) -> Event:
    """Parse verified body bytes into an :class:`Event` with :func:`flask_havn.rules.load_json`:
    strict UTF-8 JSON, no NaN/Infinity, at most :data:`~flask_havn.rules.MAX_JSON_DEPTH` levels deep
    (a deeper body parses, then cannot be stored: it would be answered 500 on every retry).

    ``expected_id`` is the ``webhook-id`` header: the envelope's ``id`` must equal it.
    """
    try:
        envelope = rules.load_json(body, "body")
    except HAVNValidationError as exc:
        raise EnvelopeError(f"the body is not UTF-8 JSON we accept: it {exc.reason}") from None
    return Event._checked(envelope, expected_id, walk=_MAY_HOLD_WIDE_INT_OR_SURROGATE.search(body) is not None)


def check_columns(event: Event, event_model: Any, payment_model: Any) -> None:
    """Refuse (:class:`EnvelopeError`) an event with text a column it is written to cannot hold.

    That is text longer than the column — widths from the models: the event's
    ``id``, ``type`` and ``created_at`` (``havn_webhook_events``), HAVN's
    ``transaction_id`` (``havn_payments.havn_transaction_id``) — or with a NUL
    in one of those or in a conversion failure's ``reason`` (``last_error``).
    SQLite would store it, PostgreSQL refuses it: the event would fail on every
    retry; a 400 once (nothing stored) is the honest answer.
    """
    transaction_id = _transaction(event.data).get("transaction_id")
    texts = ((event.id, event_model, "id"), (event.type, event_model, "type"),
             (event.created_at, event_model, "event_created_at"), (transaction_id, payment_model, "havn_transaction_id"))
    for value, model, column in texts:
        width = column_length(model, column)
        if isinstance(value, str) and len(value) > width:
            raise EnvelopeError(f"{column} has {len(value)} characters; the column holds {width}")
    for value, column in [(value, column) for value, _, column in texts] + [(event.data.get("reason"), "reason")]:
        if isinstance(value, str) and "\x00" in value:
            raise EnvelopeError(f"{column} contains a NUL character, which a text column cannot store")


def _transaction(data: Mapping[str, Any]) -> Mapping[str, Any]:
    value = data.get("transaction")
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value and len(value) <= 200 else None


def _int(value: Any) -> Optional[int]:
    """An amount that fits a ``BIGINT`` column (0..MAX_INT), else ``None``."""
    return value if _is_int(value) and 0 <= value <= MAX_INT else None


#: Rows one payment lookup reads at most (see :func:`find_payment`).
_LOOKUP_WINDOW = 3
#: The keys of ``data.transaction`` that name a payment, best first, with the Payment column each matches.
_LOOKUP_KEYS = (("payment_gateway_transaction_id", "payment_gateway_transaction_id"),
                ("invoice_id", "invoice_id"), ("transaction_id", "havn_transaction_id"))


def find_payment(session: Any, payment_model: Any, data: Mapping[str, Any], *,
                 test_mode: bool = False, columns: Optional[Sequence[str]] = None) -> Optional[Any]:
    """The local Payment an event's ``data.transaction`` names, or ``None``.

    Tried in order: ``payment_gateway_transaction_id`` (unique), ``invoice_id``
    (only when exactly one payment carries it: an ambiguous invoice matches
    nothing), then HAVN's ``transaction_id`` against ``havn_transaction_id``.
    A ``test_mode`` event matches only payments recorded in test mode: it never
    changes live data.

    One indexed query asks all the keys the event has at once, best key first,
    and reads at most three rows; only when those cannot settle it (an
    ambiguous key filling them) is each later key asked on its own.
    ``columns``: read only these columns and return them as attributes of a
    plain object (no ORM row), for a caller that only needs them.
    """
    transaction = _transaction(data)
    given = [(key, value) for key, value in ((key, _text(transaction.get(key))) for key, _ in _LOOKUP_KEYS)
             if value is not None]
    if not given:
        return None
    names = tuple(key for key, _ in given)
    params = {key: value for key, value in given}
    wanted = None if columns is None else tuple(columns)
    rows = session.execute(_lookup(payment_model, names, test_mode, wanted), params).all()
    # Every row matching key k ranks at most k: the window holds them all unless it is full and
    # its last row ranks k or better.
    complete_up_to = rows[-1][0] - 1 if len(rows) == _LOOKUP_WINDOW else len(names)
    for place, name in enumerate(names):
        if place > complete_up_to:
            found = session.execute(_lookup(payment_model, (name,), test_mode, wanted), params).all()
        else:
            found = [row for row in rows if row[1 + place]]
        if len(found) == 1:
            values = found[0][-len(wanted):] if wanted else found[0][-1:]
            return SimpleNamespace(**dict(zip(wanted, values))) if wanted else values[0]
    return None


@lru_cache(maxsize=64)
def _lookup(payment_model: Any, names: Tuple[str, ...], test_mode: bool, columns: Optional[Tuple[str, ...]]) -> Any:
    """The lookup statement for these keys: ``(rank, matches key 0, matches key 1…, Payment or the
    columns)``, best rank first, at most :data:`_LOOKUP_WINDOW` rows; built once, the values are bound
    parameters."""
    by_name = dict(_LOOKUP_KEYS)
    keys = [getattr(payment_model, by_name[name]) == sa.bindparam(name) for name in names]
    rank = sa.case(*((key, place) for place, key in enumerate(keys)), else_=len(keys))
    payload = [payment_model] if columns is None else [payment_model.__table__.c[name] for name in columns]
    query = (sa.select(rank, *(sa.case((key, 1), else_=0) for key in keys), *payload)
             .where(sa.or_(*keys)).order_by(rank).limit(_LOOKUP_WINDOW))
    return query.where(payment_model.test_mode.is_(True)) if test_mode else query


def commissions_of(data: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The event's commissions: the objects of ``data.commissions`` (anything else is dropped)."""
    value = data.get("commissions")
    if not isinstance(value, list):
        return []
    return [dict(item) for item in value if isinstance(item, dict)]


def reason_of(data: Mapping[str, Any]) -> str:
    """HAVN's reason of a conversion failure (a generic text when the event has none)."""
    return failure_details(data)["reason"]


_UNSET = object()
#: The Payment columns :func:`event_changes` reads: those an event may set, ``conversion_mode`` and ``id``.
EVENT_COLUMNS = ("id", "conversion_mode", "delivery_state", "next_attempt_at", "havn_transaction_id", "commissions",
                 "total_commission", "sent_at", "conversion_verdict", "havn_amount_usd", "havn_details", "last_error")


def event_changes(event: Event, payment: Any, now: datetime) -> Dict[str, Any]:
    """The column values ``event`` sets on ``payment`` (a Payment row, or any object with the
    :data:`EVENT_COLUMNS` as attributes; read only), by column name.

    ``commission.distributed``: ``delivery_state`` becomes ``sent`` (HAVN has the
    transaction), with HAVN's transaction id, the commissions and their total;
    ``sent_at`` is set if it was not. ``transaction.conversion_failed``:
    ``delivery_state`` becomes ``conversion_failed``, ``havn_details`` holds the
    reason, amounts and rates (merged over what HAVN's synchronous answer left
    there), ``conversion_verdict`` ``failed`` and ``havn_amount_usd`` the amount
    HAVN expected; ``last_error`` the reason. Other types change nothing (``{}``).
    A value the payment already holds is left out: the usual event repeats what
    delivery recorded from HAVN's synchronous answer, and then changes nothing.
    """
    changes = _event_values(event, payment, now)
    return {name: value for name, value in changes.items() if getattr(payment, name, _UNSET) != value}


def _event_values(event: Event, payment: Any, now: datetime) -> Dict[str, Any]:
    transaction = _transaction(event.data)
    havn_id = _text(transaction.get("transaction_id"))
    changes: Dict[str, Any] = {}
    if event.type == COMMISSION_DISTRIBUTED:
        commissions = commissions_of(event.data)
        total = _int(event.data.get("total_commission"))
        if total is None:
            total = sum(_int(item.get("amount")) or 0 for item in commissions)
        if payment.delivery_state != "sent":
            changes.update(delivery_state="sent", next_attempt_at=None)
        if havn_id is not None:
            changes["havn_transaction_id"] = havn_id
        changes.update(commissions=commissions, total_commission=total)
        if payment.sent_at is None:
            changes["sent_at"] = now
        if getattr(payment, "conversion_mode", None) is not None:
            changes["conversion_verdict"] = "accepted"
            usd = _int(transaction.get("amount_usd"))
            if usd is None and transaction.get("currency") == "USD":
                usd = _int(transaction.get("amount"))
            if usd is not None:
                changes["havn_amount_usd"] = usd
    elif event.type == CONVERSION_FAILED:
        details = failure_details(event.data)
        before = payment.havn_details if isinstance(payment.havn_details, dict) else {}
        changes.update(
            delivery_state="conversion_failed", next_attempt_at=None,
            havn_details={**before, **{k: v for k, v in details.items() if v is not None or k not in before}},
            last_error=details["reason"], conversion_verdict="failed", havn_amount_usd=details["expected_amount"],
        )
        if havn_id is not None and payment.havn_transaction_id is None:
            changes["havn_transaction_id"] = havn_id
    return changes


def apply_event(event: Event, payment: Any, now: datetime) -> None:
    """Write what ``event`` says onto ``payment`` (a Payment row): :func:`event_changes`, set as
    attributes; no commit, no signal."""
    for name, value in event_changes(event, payment, now).items():
        setattr(payment, name, value)

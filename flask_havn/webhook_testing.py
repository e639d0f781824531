"""Test helpers for hosts of the webhook receiver (re-exported by ``flask_havn.testing``).

``sign_webhook`` builds a delivery exactly as HAVN would send it, so a test can
POST it to the app's endpoint; ``record_signals`` captures the signals sent
inside a ``with`` block, like Flask-Mail's ``record_messages()``::

    body, headers = sign_webhook({"type": "commission.distributed", "data": {...}}, secret)
    with record_signals() as sent:
        client.post("/havn/webhooks", data=body, headers=headers)
    assert [s.name for s in sent] == ["havn.commission-distributed", "havn.webhook-received"]
"""
from __future__ import annotations

import contextlib
import json
import secrets as _secrets
import time
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from blinker import NamedSignal

from . import signals as _signals_module
from .currency import to_usd_cents
from .events import COMMISSION_DISTRIBUTED, CONVERSION_FAILED
from .signing import new_event_id, webhook_headers

__all__ = ["sign_webhook", "record_signals", "RecordedSignal", "sample_event", "new_event_id", "ALL_SIGNALS"]

#: Every signal of flask_havn (what ``record_signals()`` records when given none).
ALL_SIGNALS: Tuple[NamedSignal, ...] = tuple(getattr(_signals_module, name) for name in _signals_module.__all__)


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usd_per_unit(currency: str) -> str:
    """The sandbox's sample USD rate of ``currency`` ("1" when unknown)."""
    from .sandbox.settings import DEFAULT_EXCHANGE_RATES

    return DEFAULT_EXCHANGE_RATES.get(currency, "1")


def _percent(amount: int, percent: str) -> int:
    return int((Decimal(amount) * Decimal(percent) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def sample_event(
    event_type: str, *, payment: Any = None, event_id: Optional[str] = None, test_mode: bool = False
) -> Dict[str, Any]:
    """A realistic envelope of ``event_type`` (webhook-events.md), for tests and ``flask havn trigger``.

    With ``payment`` (a Payment row) the event names that payment (its gateway
    id, invoice, amount and HAVN transaction id) so the receiver matches it;
    without, it names a transaction the app does not know. Unknown types get
    an empty ``data``.
    """
    suffix = _secrets.token_hex(4)
    currency = getattr(payment, "currency", None) or "USD"
    amount = int(getattr(payment, "amount", None) or 100000)
    upline = None
    project = getattr(payment, "project", None)
    if project is not None:
        upline = getattr(project, "upline_referral_code", None)
    transaction: Dict[str, Any] = {
        "transaction_id": getattr(payment, "havn_transaction_id", None) or f"txn_{suffix}",
        "currency": "USD",
        "referral_code": upline or "HAVN-MJ-001",
        "invoice_id": getattr(payment, "invoice_id", None) or f"INV-{suffix}",
        "payment_gateway_transaction_id": getattr(payment, "payment_gateway_transaction_id", None)
        or f"pi_{suffix}",
    }
    rate = _usd_per_unit(currency)
    usd_cents = to_usd_cents(amount, currency, rate)
    data: Dict[str, Any] = {}
    if event_type == COMMISSION_DISTRIBUTED:
        transaction.update(amount=usd_cents, status="completed", customer_type="NEW_CUSTOMER",
                           custom_fields=dict(getattr(payment, "custom_fields", None) or {}))
        commissions = [
            {"commission_id": f"com_{suffix}_{level}", "associate_id": f"asc_{suffix}_{level}",
             "referral_code": transaction["referral_code"] if level == 1 else f"HAVN-UP-{level:03d}",
             "level": level, "amount": _percent(usd_cents, percent), "percentage": float(percent),
             "type": "REFERRAL", "direction": "UP", "status": "PENDING"}
            for level, percent in ((1, "5"), (2, "3"))
        ]
        data = {"transaction": transaction, "commissions": commissions,
                "total_commission": sum(item["amount"] for item in commissions)}
    elif event_type == CONVERSION_FAILED:
        original_currency = currency if currency != "USD" else "IDR"
        original_amount = amount if currency != "USD" else 150000
        server_rate = _usd_per_unit(original_currency)
        submitted_rate = str((Decimal(server_rate) * Decimal("1.05")).normalize())
        expected = to_usd_cents(original_amount, original_currency, server_rate)
        submitted = to_usd_cents(original_amount, original_currency, submitted_rate)
        if submitted == expected:
            submitted += 1
        transaction.update(amount=submitted, status="FAILED")
        data = {"transaction": transaction, "original_amount": original_amount,
                "original_currency": original_currency, "submitted_amount": submitted,
                "expected_amount": expected, "submitted_exchange_rate": submitted_rate,
                "server_exchange_rate": server_rate,
                "reason": "converted amount does not match server conversion"}
    return {"id": event_id or new_event_id(), "type": event_type, "created_at": _now_iso(),
            "test_mode": bool(test_mode), "data": data}


def sign_webhook(
    payload: Union[Mapping[str, Any], bytes, str],
    secret: Union[str, Sequence[str]],
    *,
    msg_id: Optional[str] = None,
    timestamp: Optional[int] = None,
) -> Tuple[bytes, Dict[str, str]]:
    """Sign an event like HAVN does; return ``(body_bytes, headers)`` ready to POST.

    ``payload`` is usually an envelope dict. When it has ``type`` and ``data``
    (an event), the missing envelope keys are filled in: ``id`` (``msg_id``,
    else a fresh ``evt_…``), ``created_at`` (now, UTC) and ``test_mode``
    (``False``); any other dict is signed as given, so a test can send invalid
    envelopes. Bytes or text are signed exactly as given. The ``webhook-id``
    header is ``msg_id``, else the payload's ``id``, else a fresh id.
    ``secret`` may be a list: one signature per secret (a rotation).
    ``timestamp`` defaults to now.
    """
    if isinstance(payload, (bytes, str)):
        body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        msg_id = msg_id or new_event_id()
    else:
        envelope = dict(payload)
        if "type" in envelope and "data" in envelope:
            envelope.setdefault("id", msg_id or new_event_id())
            envelope.setdefault("created_at", _now_iso())
            envelope.setdefault("test_mode", False)
        if msg_id is None:
            msg_id = envelope["id"] if isinstance(envelope.get("id"), str) and envelope["id"] else new_event_id()
        body = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
    secret_list = [secret] if isinstance(secret, str) else list(secret)
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return body, webhook_headers(secret_list, msg_id, body, timestamp=ts)


class RecordedSignal(NamedTuple):
    """One signal sent inside :func:`record_signals`: its name, sender and keyword arguments."""

    name: str
    sender: Any
    kwargs: Dict[str, Any]


@contextlib.contextmanager
def record_signals(*signals: NamedSignal) -> Iterator[List[RecordedSignal]]:
    """Record the given flask_havn signals (default: all of them) sent inside the block.

    Yields a list that fills as signals are sent, in order. Receivers are
    connected strongly (``weak=False``) and disconnected on exit.
    """
    chosen = signals or ALL_SIGNALS
    recorded: List[RecordedSignal] = []
    receivers = []
    for signal in chosen:
        def receiver(sender: Any, _name: str = signal.name, **kwargs: Any) -> None:
            recorded.append(RecordedSignal(_name, sender, kwargs))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    try:
        yield recorded
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)

"""Signatures, both directions; no Flask here, shared by client, sandbox and receiver.

* Outbound API calls (SaaS → HAVN): ``X-Signature`` is the lowercase hex
  HMAC-SHA256 of the payload's *canonical* JSON (keys sorted at every level,
  no whitespace, ASCII escapes) keyed by the webhook secret; a GET signs ``{}``.
* Inbound events (HAVN → SaaS): Standard Webhooks — ``webhook-id``,
  ``webhook-timestamp`` and ``webhook-signature: v1,<base64>`` over
  ``"{id}.{timestamp}.{raw body}"``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from typing import Any, Iterable, Mapping, Optional, Sequence

from .errors import WebhookVerificationError

__all__ = [
    "canonical_json",
    "sign_payload",
    "sign_body",
    "verify_api_signature",
    "webhook_key",
    "sign_webhook_message",
    "webhook_headers",
    "verify_webhook",
    "new_event_id",
    "DEFAULT_WEBHOOK_TOLERANCE",
]

#: Seconds a ``webhook-timestamp`` may differ from now, in either direction.
DEFAULT_WEBHOOK_TOLERANCE = 300
_EMPTY = b"{}"


def canonical_json(payload: Any) -> bytes:
    """Serialise ``payload`` the way HAVN signs it: sorted keys, compact, ASCII.

    NaN and Infinity are not JSON: they raise ``ValueError`` instead of going on the wire.
    """
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("utf-8")


def sign_body(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of already-canonical ``body`` bytes (``{}`` when empty)."""
    return hmac.new(secret.encode("utf-8"), body or _EMPTY, hashlib.sha256).hexdigest()


def sign_payload(secret: str, payload: Optional[Mapping[str, Any]]) -> str:
    """``X-Signature`` for ``payload`` (``None`` or a GET: the literal ``{}``)."""
    return sign_body(secret, canonical_json(payload) if payload else _EMPTY)


def verify_api_signature(secret: str, body: bytes, signature: Optional[str]) -> bool:
    """Check an ``X-Signature`` the way HAVN's server must.

    The official SDK signs canonical JSON but sends spaced, unsorted JSON, so
    the body is parsed and re-serialised canonically before comparing. A body
    that is not JSON, or a missing signature, never verifies.
    """
    if not signature:
        return False
    try:
        payload = json.loads(body) if body.strip() else {}
        expected = sign_body(secret, canonical_json(payload))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode("utf-8", "replace"))


# -- Standard Webhooks ------------------------------------------------------


def new_event_id() -> str:
    """A fresh event id (the ``webhook-id``): ``evt_`` + 24 url-safe random characters."""
    return "evt_" + secrets.token_urlsafe(18)


def webhook_key(secret: str) -> bytes:
    """The HMAC key for ``secret``: ``whsec_<base64>`` decodes, anything else is UTF-8."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode("utf-8")


def sign_webhook_message(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature entry over ``"{id}.{timestamp}.{body}"``."""
    message = f"{msg_id}.{timestamp}.".encode("utf-8") + body
    digest = hmac.new(webhook_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_headers(
    secrets: Sequence[str], msg_id: str, body: bytes, *, timestamp: Optional[int] = None
) -> dict:
    """The three Standard Webhooks headers for ``body``, one signature per secret."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signatures = " ".join(sign_webhook_message(s, msg_id, ts, body) for s in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
    }


def _header(headers: Mapping[str, str], name: str) -> Optional[str]:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.title())
    if value is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    return value


def verify_webhook(
    secrets: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_WEBHOOK_TOLERANCE,
    now: Optional[float] = None,
) -> str:
    """Verify a Standard Webhooks delivery over the raw ``body``; return its id.

    Raises :class:`WebhookVerificationError` with status 400 for missing or
    malformed headers and 401 for a stale timestamp or no matching signature.
    Comparison is constant-time; any one matching ``v1`` entry suffices.
    """
    msg_id = _header(headers, "webhook-id")
    raw_ts = _header(headers, "webhook-timestamp")
    raw_sig = _header(headers, "webhook-signature")
    if not msg_id or not raw_ts or not raw_sig:
        raise WebhookVerificationError("missing webhook headers", status_code=400)
    if len(msg_id) > 256 or any(c in msg_id for c in ". \t\r\n"):
        raise WebhookVerificationError("malformed webhook-id header", status_code=400)
    if not raw_ts.isascii() or not raw_ts.isdigit() or len(raw_ts) > 12:
        raise WebhookVerificationError("malformed webhook-timestamp header", status_code=400)
    timestamp = int(raw_ts)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook timestamp outside tolerance", status_code=401)
    offered = []
    for entry in raw_sig.split():
        version, _, value = entry.partition(",")
        if version == "v1" and value:
            offered.append(value)
    if not offered:
        raise WebhookVerificationError("malformed webhook-signature header", status_code=400)
    matched = False
    for secret in secrets:
        expected = sign_webhook_message(secret, msg_id, timestamp, body)[3:]
        for value in offered:
            # Compare every pair so timing does not reveal which entry matched.
            matched |= hmac.compare_digest(expected.encode("ascii"), value.encode("utf-8", "replace"))
    if not matched:
        raise WebhookVerificationError("no matching webhook signature", status_code=401)
    return msg_id

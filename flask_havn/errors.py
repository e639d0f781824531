"""The one error tree of flask_havn.

Every error has ``.message`` (what went wrong and what to do) and
``.status_code`` (the HTTP status when one applies, else ``None``)::

    HAVNError
    ├── HAVNConfigError          the extension or client is set up wrongly
    ├── HAVNValidationError      a value broke a payload rule; nothing was sent
    │   └── HAVNRecordNotFoundError  no local project/payment with that id (404)
    ├── HAVNNetworkError         no answer: connection failed or timed out
    ├── HAVNAPIError             HAVN answered with an error status
    │   ├── HAVNAuthError        401: wrong API key or webhook secret
    │   ├── HAVNNotFoundError    404: unknown referral code, voucher or user
    │   ├── HAVNConflictError    409: same idempotent identity, different content
    │   └── HAVNRateLimitError   429: too many requests (after our retries)
    └── WebhookVerificationError an inbound webhook failed verification

No error message, ``str()`` or ``repr()`` ever contains the API key or the
webhook secret: :func:`redact` replaces them before a message is built.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Mapping, Optional

__all__ = [
    "HAVNError",
    "HAVNConfigError",
    "HAVNValidationError",
    "HAVNRecordNotFoundError",
    "HAVNNetworkError",
    "HAVNAPIError",
    "HAVNAuthError",
    "HAVNNotFoundError",
    "HAVNConflictError",
    "HAVNRateLimitError",
    "WebhookVerificationError",
    "REDACTED",
    "redact",
]

#: What a secret becomes in a message, a log line or a copied response body.
REDACTED = "***"
#: A secret this long or longer cannot turn up inside ordinary words by chance, so it is replaced
#: wherever it appears, even glued to other characters (``key%3D<secret>``, ``Bearer<secret>``).
_ANYWHERE_LENGTH = 12
#: Characters that continue a token: a shorter secret is replaced only where none touches it.
_TOKEN_CHAR = r"[\w-]"


def redact(text: str, secrets: Iterable[Optional[str]]) -> str:
    """``text`` with every secret in ``secrets`` replaced by ``***``.

    A secret is replaced where it stands as a whole token (the whole text,
    e.g. a header value, or bounded by characters other than letters, digits,
    ``_`` and ``-``), so a short development key such as ``"dev"`` leaves
    "developer" and "dev-server" readable while ``"key=dev refused"``
    becomes ``"key=*** refused"``. A secret of 12 characters or more is
    replaced anywhere. Empty secrets are ignored; longer ones match first.
    """
    patterns = []
    for secret in sorted({s for s in secrets if s and s.strip()}, key=len, reverse=True):
        escaped = re.escape(secret)
        if len(secret) < _ANYWHERE_LENGTH:
            escaped = f"(?<!{_TOKEN_CHAR}){escaped}(?!{_TOKEN_CHAR})"
        patterns.append(escaped)
    if not patterns:
        return text
    return re.sub("|".join(patterns), REDACTED, text)


class HAVNError(Exception):
    """Root of every flask_havn error; ``except HAVNError as e: e.message, e.status_code``."""

    status_code: Optional[int] = None

    def __init__(self, message: str, *, status_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r})"


class HAVNConfigError(HAVNError):
    """The extension or client is configured wrongly (raised at set-up, not per call)."""


class HAVNValidationError(HAVNError, ValueError):
    """A value breaks a HAVN payload rule; raised before any request is sent.

    ``.field`` names the offending field (``"amount"``, ``"users[3].email"``…),
    ``.reason`` says what is wrong with it, and ``.errors`` maps every offending
    field to its reason when several were wrong at once (``None`` otherwise).
    """

    status_code = 400

    def __init__(self, field: str, message: str, *, errors: Optional[Dict[str, str]] = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message
        self.errors = errors


class HAVNRecordNotFoundError(HAVNValidationError):
    """No local project or payment has the id the caller passed (the routes answer 404)."""

    status_code = 404


class HAVNNetworkError(HAVNError):
    """HAVN could not be reached or did not answer in time (after retries)."""


class HAVNAPIError(HAVNError):
    """HAVN answered with an error status.

    ``.error_type`` is HAVN's ``error`` field, ``.response`` the parsed JSON body
    (or ``None``), ``.request_id`` the ``X-Request-Id`` header when HAVN sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: Optional[int] = None,
        error_type: Optional[str] = None,
        response: Optional[Mapping[str, Any]] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.error_type = error_type
        self.response = response
        self.request_id = request_id


class HAVNAuthError(HAVNAPIError):
    """401: HAVN rejected the API key or the request signature.

    Check ``HAVN_API_KEY`` and ``HAVN_WEBHOOK_SECRET`` (no stray whitespace).
    """

    status_code = 401


class HAVNNotFoundError(HAVNAPIError):
    """404: HAVN does not know the referral code, voucher or user named in the request."""

    status_code = 404


class HAVNConflictError(HAVNAPIError):
    """409: HAVN already holds a different transaction under this idempotent identity."""

    status_code = 409


class HAVNRateLimitError(HAVNAPIError):
    """429 after the client's retries; ``.retry_after`` seconds until the window resets."""

    status_code = 429

    def __init__(
        self,
        message: str,
        *,
        retry_after: Optional[float] = None,
        limit: Optional[int] = None,
        remaining: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("status_code", 429)
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.limit = limit
        self.remaining = remaining


class WebhookVerificationError(HAVNError):
    """An inbound webhook failed verification; ``.status_code`` is 400, 401 or 413."""

    def __init__(self, message: str, *, status_code: int = 401) -> None:
        super().__init__(message, status_code=status_code)

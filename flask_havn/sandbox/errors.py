"""HAVN's error answers as the sandbox gives them: an HTTP status plus ``{"error", "message"}``.

No Flask here: the backend raises :class:`SandboxError`, the HTTP layer turns it
into a response with :meth:`SandboxError.body` and :attr:`SandboxError.status`.
Error type names follow what HAVN's docs show (``ValidationError``,
``AuthenticationError``, ``NotFound``, ``RateLimitExceeded``…).
"""
from __future__ import annotations

from typing import Dict, Optional

from ..errors import HAVNValidationError

__all__ = [
    "SandboxError",
    "bad_request",
    "not_found",
    "conflict",
    "unprocessable",
    "unauthorized",
    "rate_limited",
    "from_validation",
]


class SandboxError(Exception):
    """A HAVN error answer: HTTP status + HAVN's {"error", "message"} body."""

    def __init__(self, status: int, error: str, message: str, *, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = int(status)
        self.error = error
        self.message = message
        self.field = field

    def body(self) -> Dict[str, str]:
        """The JSON body HAVN answers with (``field`` only when one field is to blame)."""
        out = {"error": self.error, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out

    def __repr__(self) -> str:
        return f"SandboxError({self.status}, {self.error!r}, {self.message!r}, field={self.field!r})"


def bad_request(message: str, field: Optional[str] = None) -> SandboxError:
    """400 ``ValidationError``: the request itself is malformed."""
    return SandboxError(400, "ValidationError", message, field=field)


def not_found(message: str, field: Optional[str] = None) -> SandboxError:
    """404 ``NotFound``: an unknown referral code, voucher or user."""
    return SandboxError(404, "NotFound", message, field=field)


def conflict(message: str, field: Optional[str] = None) -> SandboxError:
    """409 ``Conflict``: the same idempotent identity with different content."""
    return SandboxError(409, "Conflict", message, field=field)


def unprocessable(message: str, field: Optional[str] = None) -> SandboxError:
    """422 ``UnprocessableEntity``: well-formed, but a business rule refuses it."""
    return SandboxError(422, "UnprocessableEntity", message, field=field)


def unauthorized(message: str = "Authentication failed: check X-API-Key and X-Signature "
                 "(HAVN_API_KEY / HAVN_WEBHOOK_SECRET, no stray whitespace)") -> SandboxError:
    """401 ``AuthenticationError``: wrong API key or signature."""
    return SandboxError(401, "AuthenticationError", message)


def rate_limited(message: str = "Rate limit exceeded: wait until X-RateLimit-Reset before retrying") -> SandboxError:
    """429 ``RateLimitExceeded``."""
    return SandboxError(429, "RateLimitExceeded", message)


def from_validation(exc: HAVNValidationError) -> SandboxError:
    """Wrap a :mod:`flask_havn.rules` failure as HAVN's 400 naming the field."""
    return bad_request(exc.message, field=exc.field)

"""flask_havn: the HAVN referral and commission platform for Flask apps."""
from __future__ import annotations

from .errors import (
    HAVNAPIError,
    HAVNAuthError,
    HAVNConfigError,
    HAVNConflictError,
    HAVNError,
    HAVNNetworkError,
    HAVNNotFoundError,
    HAVNRateLimitError,
    HAVNValidationError,
    WebhookVerificationError,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "HAVN",
    "HAVNClient",
    "current_havn",
    "HAVNError",
    "HAVNConfigError",
    "HAVNValidationError",
    "HAVNNetworkError",
    "HAVNAPIError",
    "HAVNAuthError",
    "HAVNNotFoundError",
    "HAVNConflictError",
    "HAVNRateLimitError",
    "WebhookVerificationError",
]


def __getattr__(name: str) -> object:
    # Transitional: the extension and client are imported on first use.
    if name in ("HAVN", "current_havn"):
        from . import extension

        return getattr(extension, name)
    if name == "HAVNClient":
        from .client import HAVNClient

        return HAVNClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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

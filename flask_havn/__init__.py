"""flask_havn: the HAVN referral and commission platform for Flask apps."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__ as __version__
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

__all__ = [
    "HAVN",
    "HAVNClient",
    "current_havn",
    "current_referral",
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


if TYPE_CHECKING:  # pragma: no cover
    from .client import HAVNClient
    from .extension import HAVN, current_havn, current_referral


def __getattr__(name: str) -> object:
    # HAVN, current_havn and HAVNClient load Flask, SQLAlchemy and requests; they are
    # imported on first use so that the pytest plugin (flask_havn.testing), loaded
    # into every pytest run of a host, costs nothing until a fixture is used.
    if name in ("HAVN", "current_havn", "current_referral"):
        from . import extension

        return getattr(extension, name)
    if name == "HAVNClient":
        from .client import HAVNClient

        return HAVNClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

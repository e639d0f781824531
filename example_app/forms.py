"""Small helpers for ShopEasy's HTML forms: field errors, ids typed by people.

Team lists (pasted or uploaded CSV) are read and synced by flask_havn's own
:mod:`flask_havn.members_csv`, the same code as ``flask havn sync-members``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from flask_havn import HAVNValidationError

__all__ = ["field_errors", "get_row", "MAX_TEAM_BYTES", "MAX_TEAM_ROWS", "MAX_ID"]

#: Largest team file ShopEasy reads (``SHOPEASY_TEAM_MAX_BYTES`` overrides it), and most rows per import.
MAX_TEAM_BYTES = 512 * 1024
MAX_TEAM_ROWS = 2000


def field_errors(exc: HAVNValidationError, aliases: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Every field → message of a validation error (services report all fields in ``.errors``)."""
    raw = exc.errors or {exc.field: exc.reason}
    names = aliases or {}
    return {names.get(field, field): message for field, message in raw.items()}


#: Largest id a database integer column holds (SQLite and PostgreSQL BIGINT).
MAX_ID = 2 ** 63 - 1


def get_row(session: Any, model: Any, raw_id: Any) -> Optional[Any]:
    """``session.get(model, id)`` for an id typed into a URL or form; ``None`` for anything that is not one."""
    text = str(raw_id).strip()
    if not text.isdigit() or not text.isascii():
        return None
    number = int(text)
    if not 1 <= number <= MAX_ID:
        return None
    return session.get(model, number)

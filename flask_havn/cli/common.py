"""What every ``flask havn`` command shares: the app's state, id arguments, errors as ``Error:`` lines."""
from __future__ import annotations

import re
from typing import List, Optional

import click

from ..errors import HAVNConfigError, HAVNError, HAVNValidationError
from ..rules import MAX_ID
from ..state import HAVNState, get_state

__all__ = ["ID", "fail", "require_state"]

#: A row id argument: bounded like the routes' ids, so a huge number is a usage error, not a crash.
ID = click.IntRange(1, MAX_ID)

_USER_FIELD = re.compile(r"^users\[(\d+)\]")


def require_state(*, db: bool = True) -> HAVNState:
    """The app's HAVN state (with a database unless ``db=False``), or a ClickException saying how to get one."""
    try:
        state = get_state()
        return state.require_db() if db else state
    except HAVNConfigError as exc:
        raise click.ClickException(exc.message + " (FLASK_APP must point at the app that calls HAVN(app, db=db))"
                                   ) from None


def fail(exc: HAVNError, lines: Optional[List[int]] = None) -> click.ClickException:
    """The error as a ClickException; with a CSV's ``lines``, ``users[i]…`` fields say their line too."""
    errors = exc.errors if isinstance(exc, HAVNValidationError) else None
    if not errors and isinstance(exc, HAVNValidationError):
        errors = {exc.field: exc.reason}  # shown as exc.message is, "field: reason"
    if errors:
        return click.ClickException("\n".join(f"{_where(field, lines)}: {message}"
                                               for field, message in errors.items()))
    return click.ClickException(exc.message)


def _where(field: str, lines: Optional[List[int]]) -> str:
    match = _USER_FIELD.match(field)
    if lines is None or match is None or int(match.group(1)) >= len(lines):
        return field
    return f"line {lines[int(match.group(1))]}: {field}"

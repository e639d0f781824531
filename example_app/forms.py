"""Small helpers for ShopEasy's HTML forms: field errors, CSV team lists, ids typed by people."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from flask_havn import HAVNValidationError
from flask_havn.rules import check_email, check_text

__all__ = ["field_errors", "TeamRow", "parse_team", "get_row", "MAX_TEAM_BYTES", "MAX_TEAM_ROWS", "MAX_ID"]

#: Largest team file ShopEasy reads (``SHOPEASY_TEAM_MAX_BYTES`` overrides it), and most rows per import.
MAX_TEAM_BYTES = 512 * 1024
MAX_TEAM_ROWS = 2000


def field_errors(exc: HAVNValidationError, aliases: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Every field → message of a validation error (services report all fields in ``.errors``)."""
    raw = exc.errors or {exc.field: exc.reason}
    names = aliases or {}
    return {names.get(field, field): message for field, message in raw.items()}


@dataclass
class TeamRow:
    """One line of an imported team list and what became of it."""

    line: int
    email: str
    name: str
    error: Optional[str] = None
    result: str = "pending"


def parse_team(text: str) -> Tuple[List[TeamRow], Optional[str]]:
    """Rows from CSV text (``email,name`` per line; a header line is skipped), or a message saying why not.

    Every row comes back; a row with a bad email or name carries ``error``
    and is not sent to HAVN.
    """
    rows: List[TeamRow] = []
    seen: Dict[str, int] = {}
    reader = csv.reader(io.StringIO(text))
    try:
        for record in reader:
            number = reader.line_num
            cells = [cell.strip() for cell in record]
            if not any(cells):
                continue
            if not rows and [c.lower() for c in cells] == ["email", "name"]:
                continue
            if len(rows) >= MAX_TEAM_ROWS:
                return [], f"At most {MAX_TEAM_ROWS} people per import; split the list."
            email = cells[0]
            name = cells[1] if len(cells) > 1 else ""
            row = TeamRow(line=number, email=email, name=name)
            if len(cells) > 2:
                row.error = "expected two columns, email,name (put a name with a comma in double quotes)"
            else:
                try:
                    check_email(email, "email")
                    check_text(name, "name", max_length=200, strip=True)
                except HAVNValidationError as exc:
                    row.error = f"{exc.field} {exc.reason}"
            if row.error is None:
                key = email.lower()
                if key in seen:
                    row.error = f"listed twice (also line {seen[key]})"
                else:
                    seen[key] = number
            if row.error is not None:
                row.result = "not sent"
            rows.append(row)
    except csv.Error as exc:
        return [], f"The list is not valid CSV ({exc}); put one person per line as email,name."
    if not rows:
        return [], "The list is empty; put one person per line as email,name."
    return rows, None


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

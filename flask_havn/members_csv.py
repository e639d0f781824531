"""A project's team from a CSV file: read it row by row, sync the good rows, report the bad ones.

One implementation for every door a team comes in by — ``flask havn
sync-members ID FILE.csv`` and a host's upload form (ShopEasy's team import
uses it) — so they accept the same files and answer the same way:

* :func:`decode` turns the uploaded bytes into text (UTF-8, with or without a
  byte-order mark) or raises :class:`~flask_havn.errors.HAVNValidationError`
  saying how to save the file;
* :func:`parse` reads the CSV into one :class:`MemberRow` per non-blank line.
  A problem of the whole file (not CSV, no rows, a header without ``email``
  and ``name``, too many rows) raises; a problem of one row (a bad address, a
  missing name, an address listed twice) is kept on that row as ``error``, so
  the other rows can still be synced;
* :func:`sync` sends the rows without an error through
  :meth:`Projects.sync_members <flask_havn.projects.Projects.sync_members>`
  and fills in every row's ``result``: ``synced``, ``failed`` (HAVN's reason in
  ``error``) or ``not sent``.

The file: either a header line naming the columns ``email`` and ``name`` (any
case, any order; other columns are ignored), or no header and two columns,
``email,name``, per line. A first line with no ``@`` in it is taken for a
header. Blank lines are skipped but still counted, so ``line`` is the line a
spreadsheet shows. No Flask here: the caller passes the service.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Sequence

from . import rules
from .errors import HAVNError, HAVNValidationError

if TYPE_CHECKING:  # pragma: no cover
    from .projects import Projects
    from .results import BulkSyncResult

__all__ = ["MemberRow", "decode", "parse", "sync", "SYNCED", "FAILED", "NOT_SENT", "PENDING"]

#: What became of a row (:attr:`MemberRow.result`).
PENDING, SYNCED, FAILED, NOT_SENT = "pending", "synced", "failed", "not sent"

_USER_FIELD = re.compile(r"^users\[(\d+)\](?:\.(\w+))?$")


@dataclass
class MemberRow:
    """One member line of the file and what became of it."""

    #: The line of the file it is on (1 = the first line; blank lines count).
    line: int
    email: str
    name: str
    #: Why this row is not synced: a local problem (not sent) or HAVN's refusal; ``None`` when all is well.
    error: Optional[str] = None
    #: ``pending`` until :func:`sync` ran, then ``synced``, ``failed`` or ``not sent``.
    result: str = PENDING


def decode(data: bytes) -> str:
    """``data`` as text (UTF-8, a leading byte-order mark dropped), or a HAVNValidationError on ``file``.

    Like every whole-file problem here, the error's ``reason`` reads after the
    file's name: ``f"{filename} {exc.reason}"``.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HAVNValidationError("file", "is not UTF-8 text; save it as CSV (UTF-8) and try again") from None


def parse(text: str, *, max_rows: Optional[int] = None) -> List[MemberRow]:
    """One :class:`MemberRow` per member line of the CSV ``text``; a whole-file problem raises.

    Raises :class:`~flask_havn.errors.HAVNValidationError` on ``file`` when
    the text is not CSV, has no member rows, has a header that lacks ``email``
    or ``name``, or has more than ``max_rows`` rows. Each row's own problem is
    its ``error`` (and it will not be sent).
    """
    reader = csv.reader(io.StringIO(text), strict=True)
    columns: Optional[_Columns] = None
    rows: List[MemberRow] = []
    seen: Dict[str, int] = {}
    try:
        for record in reader:
            cells = [cell.strip() for cell in record]
            if not any(cells):
                continue  # a blank line
            if columns is None:
                columns = _columns(cells)
                if columns.header:
                    continue
            if max_rows is not None and len(rows) >= max_rows:
                raise HAVNValidationError("file", f"has more than {max_rows} members; split it into smaller files")
            rows.append(_row(reader.line_num, cells, columns, seen))
    except csv.Error as exc:
        raise HAVNValidationError("file", f"is not valid CSV ({exc}); put one person per line as email,name"
                                  ) from None
    if not rows:
        raise HAVNValidationError("file", "has no members; put one person per line as email,name "
                                  "(a first line email,name is read as the header)")
    return rows


class _Columns(NamedTuple):
    """Where a file keeps the email and the name, and whether its first line was a header."""

    email: int
    name: int
    header: bool


def _columns(first: List[str]) -> _Columns:
    """Where email and name are: from a header line (no ``@`` in it), else the first two columns."""
    if any("@" in cell for cell in first):
        return _Columns(0, 1, header=False)
    names = [cell.lower() for cell in first]
    missing = [column for column in ("email", "name") if column not in names]
    if missing:
        raise HAVNValidationError("file", f"has a header line without the columns email and name (missing: "
                                  f"{', '.join(missing)}); make the first line email,name")
    return _Columns(names.index("email"), names.index("name"), header=True)


def _row(line: int, cells: List[str], columns: _Columns, seen: Dict[str, int]) -> MemberRow:
    """The row on ``line``, with its own problem (if any) as ``error``; ``seen`` tracks duplicates."""
    email = cells[columns.email] if columns.email < len(cells) else ""
    name = cells[columns.name] if columns.name < len(cells) else ""
    row = MemberRow(line=line, email=email, name=name)
    if not columns.header and any(cells[2:]):
        row.error = ("expected two columns, email,name (put a name with a comma in double quotes, or add a "
                     "header line naming email and name to have other columns ignored)")
    else:
        try:
            rules.check_email(email, "email")
            rules.check_text(name, "name", max_length=200, strip=True)
        except HAVNValidationError as exc:
            row.error = f"{exc.field} {exc.reason}"
    if row.error is None:
        key = email.lower()
        if key in seen:
            row.error = f"listed twice (also line {seen[key]})"
        else:
            seen[key] = line
    if row.error is not None:
        row.result = NOT_SENT
    return row


def sync(projects: "Projects", project: Any, rows: Sequence[MemberRow], *,
         on_batch: Optional[Callable[[int, int, Any], None]] = None) -> Optional["BulkSyncResult"]:
    """Sync the rows without an error as partners of ``project``; every row's ``result`` says what happened.

    ``projects`` is the app's :class:`~flask_havn.projects.Projects` service
    (``havn.projects``), ``project`` a row or id. The project's owner, listed
    in the file, is not sent (owners are synced with ``sync_owner``). Returns
    the merged :class:`~flask_havn.results.BulkSyncResult`, or ``None`` when no
    row could be sent. A problem of the whole call (the project has no
    referral code yet, HAVN unreachable) raises after the rows it concerns are
    marked; per-member refusals by HAVN do not raise: those rows are
    ``failed`` with HAVN's reason.
    """
    project = projects.get(project)
    owner = next((m for m in project.members if m.role == "owner"), None)
    for row in rows:
        if row.error is None and owner is not None and row.email.lower() == owner.email_key:
            row.error, row.result = "is the project's owner (synced as owner, not as a team member)", NOT_SENT
    sendable = [row for row in rows if row.error is None]
    if not sendable:
        return None
    try:
        result = projects.sync_members(project, [{"email": r.email, "name": r.name} for r in sendable],
                                       on_batch=on_batch)
    except HAVNValidationError as exc:
        if not _mark_invalid(sendable, exc):
            raise
        return None
    except HAVNError:
        _read_outcomes(project, sendable)
        raise
    _read_outcomes(project, sendable)
    return result


def _mark_invalid(sent: List[MemberRow], exc: HAVNValidationError) -> bool:
    """Put a ``users[i].field`` refusal on the i-th row sent (the rest: not sent); False if it is not per row."""
    problems = exc.errors or {exc.field: exc.reason}
    matches = [(_USER_FIELD.match(field), message) for field, message in problems.items()]
    if not all(match for match, _ in matches):
        return False
    for match, message in matches:
        assert match is not None
        row = sent[int(match.group(1))]
        row.error, row.result = f"{match.group(2) or 'row'} {message}", NOT_SENT
    for row in sent:
        if row.result == PENDING:
            row.error, row.result = "not sent: fix the rows marked and sync again", NOT_SENT
    return True


def _read_outcomes(project: Any, sent: List[MemberRow]) -> None:
    """Each sent row's outcome as the service recorded it on the member (``synced``, or why not)."""
    members = {member.email_key: member for member in project.members}
    for row in sent:
        member = members.get(row.email.lower())
        if member is not None and member.sync_state == SYNCED:
            row.error, row.result = None, SYNCED
        elif member is None or member.sync_state == PENDING:
            row.error, row.result = "not sent: HAVN stopped answering before this row's batch", NOT_SENT
        else:
            row.error, row.result = member.last_error or "HAVN did not sync this person", FAILED

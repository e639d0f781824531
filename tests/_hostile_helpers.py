"""Helpers of the hostile-input tests: deep JSON, values at and beyond their column, "nothing changed"."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Dict

import sqlalchemy as sa

from flask_havn import rules
from flask_havn.models import column_length

from _projects_helpers import TransactionCounter, dump, sandbox_of

#: Text no database column stores: a NUL (PostgreSQL refuses it) and a lone UTF-16 surrogate (no UTF-8 form).
UNSTORABLE = {"nul": "bad\x00text", "surrogate": "bad\ud800text"}


def deep(depth: int, leaf: str = "1") -> str:
    """JSON text of ``depth`` nested arrays around ``leaf``."""
    return "[" * depth + leaf + "]" * depth


def email_of_length(length: int) -> str:
    """A well-formed address of exactly ``length`` characters."""
    domain = "@example.com"
    return "a" * (length - len(domain)) + domain


def width(model: Any, column: str) -> int:
    """The column's declared width (what the checks derive their limits from)."""
    return column_length(model, column)


def largest_custom_fields() -> Dict[str, Any]:
    """The largest ``custom_fields`` a payment may record: 3 keys of the longest length (non-ASCII), a
    64-bit integer at each end of the range and a text (of emoji) filling the byte budget exactly."""
    keys = [f"{n}" + "ключ" * 10 for n in range(3)]
    keys = [key[:rules.MAX_CUSTOM_FIELD_KEY] for key in keys]
    fields: Dict[str, Any] = {keys[0]: rules.MAX_INT64, keys[1]: rules.MIN_INT64, keys[2]: ""}
    used = len(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    room = rules.MAX_CUSTOM_FIELDS_BYTES - used
    text = "\U0001F600" * (room // 4)  # 4 bytes each in UTF-8, a surrogate pair (12 bytes) when \\u-escaped
    text += "x" * (room - len(text.encode("utf-8")))
    assert len(text) <= rules.MAX_CUSTOM_FIELD_TEXT
    fields[keys[2]] = text
    size = len(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    assert size == rules.MAX_CUSTOM_FIELDS_BYTES and all(len(k) == rules.MAX_CUSTOM_FIELD_KEY for k in keys)
    return fields


def table_counts(host: Any) -> Dict[str, int]:
    """Rows in each havn_* table of the host."""
    with host.app.app_context():
        models = host.havn.models
        session = host.db.session
        counts = {model.__tablename__: session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
                  for model in (models.Project, models.ProjectMember, models.Payment, models.WebhookEvent)}
        session.rollback()
        return counts


def snapshot(host: Any) -> Dict[str, Any]:
    """Everything bad input must leave alone: the host's rows (every column) and the sandbox's state."""
    with host.app.app_context():
        models = host.havn.models
        session = host.db.session
        rows = {}
        for model in (models.Project, models.ProjectMember, models.Payment, models.WebhookEvent):
            found = session.execute(sa.select(model)).scalars().all()
            rows[model.__tablename__] = sorted(
                (tuple(repr(getattr(row, c.name)) for c in model.__table__.columns) for row in found))
        session.rollback()
    state = dump(sandbox_of(host)) if host.app.extensions["havn"].sandbox_app is not None else {}
    return {"rows": rows, "sandbox": {key: value for key, value in state.items() if key != "rates"}}


def count_requests(host: Any) -> Counter:
    """Count the requests the host sends its embedded sandbox from now on (a live Counter by path)."""
    sandbox_app = host.app.extensions["havn"].sandbox_app
    counter = TransactionCounter(sandbox_app.wsgi_app)
    sandbox_app.wsgi_app = counter
    return counter.paths

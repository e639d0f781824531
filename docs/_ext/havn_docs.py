"""Sphinx directives that build reference tables from flask_havn's own source, so they cannot drift.

``.. havn-config::``
    Every ``HAVN_*`` key of :class:`flask_havn.config.HAVNConfig`: its type,
    its default and the ``#:`` comment written next to the field.
"""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Any, Dict, List

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

_KEY_PREFIX = re.compile(r"^``HAVN_[A-Z_]+``\s+—\s+")
#: Keys with no default worth showing: they must be given (unless the sandbox is on).
_REQUIRED = {"HAVN_API_KEY", "HAVN_WEBHOOK_SECRET"}


def _default(key: str, value: Any) -> str:
    if key in _REQUIRED:
        return "(required)"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"``{value!r}``"


def _meaning(lines: List[str]) -> str:
    text = _KEY_PREFIX.sub("", " ".join(line.strip() for line in lines).strip())
    return text[:1].upper() + text[1:]


class ConfigTable(SphinxDirective):
    """``.. havn-config::``: the table of every ``HAVN_*`` key."""

    has_content = False

    def run(self) -> List[nodes.Node]:
        from flask_havn.config import DEFAULTS, HAVNConfig

        docs: Dict[Any, List[str]] = ModuleAnalyzer.for_module("flask_havn.config").find_attr_docs()
        rows = [".. list-table::", "   :header-rows: 1", "   :widths: 28 18 18 36", "",
                "   * - Key", "     - Type", "     - Default", "     - Meaning"]
        for field in fields(HAVNConfig):
            key = "HAVN_" + field.name.upper()
            meaning = _meaning(docs.get(("HAVNConfig", field.name), []))
            if not meaning:
                raise self.error(f"{key} has no #: comment in flask_havn/config.py; document it there")
            rows += [f"   * - ``{key}``", f"     - ``{field.type}``", f"     - {_default(key, DEFAULTS[key])}",
                     f"     - {meaning}"]
        container = nodes.container()
        self.state.nested_parse(StringList(rows, source="flask_havn/config.py"), self.content_offset, container)
        return container.children


def setup(app: Sphinx) -> Dict[str, Any]:
    app.add_directive("havn-config", ConfigTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

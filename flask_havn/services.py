"""The flows hosts call: projects, owner/member sync, payments and their delivery."""
from __future__ import annotations

__all__ = ["HAVNServices"]


class HAVNServices:
    """Service methods mixed into :class:`flask_havn.HAVN` (``havn.create_project(…)``…)."""

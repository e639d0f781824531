"""ShopEasy's extension objects, created once and bound to each app by the factory."""
from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN

__all__ = ["db", "havn"]

#: The app's own database; flask_havn declares its ``havn_*`` tables on it too.
db = SQLAlchemy()
#: The HAVN extension (``havn.create_project(…)``, ``havn.models.Payment``…).
havn = HAVN()

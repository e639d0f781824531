"""ShopEasy's extension objects, created once and bound to each app by the factory."""
from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect  # type: ignore[import-untyped]  # Flask-WTF ships no py.typed

from flask_havn import HAVN

__all__ = ["csrf", "db", "havn"]

#: The app's own database; flask_havn declares its ``havn_*`` tables on it too.
db = SQLAlchemy()
#: The HAVN extension (``havn.create_project(…)``, ``havn.models.Payment``…).
havn = HAVN()
#: Flask-WTF's CSRF protection of every form POST (flask_havn exempts its own webhook endpoint).
csrf = CSRFProtect()

"""flask_havn's operator console on Flask-Admin (the optional ``flask-havn[admin]`` extra).

``havn.init_admin(admin)`` adds a dashboard and read-only views of projects,
payments and webhook events (menu category "HAVN") to the host's
``flask_admin.Admin``, or creates one at ``url`` when the host passes none.
Every change is an action through the public services; access is deny-by-default
(the ``authorize`` callback given here, else ``@havn.authorize``).

This package imports Flask-Admin only inside :func:`init_admin`, so ``import
flask_havn`` (and the pure-Python :mod:`.network`, :mod:`.chart` and
:mod:`.display` helpers, which ShopEasy uses) work without the extra.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from flask import Flask, current_app, has_app_context

from ..errors import HAVNConfigError

__all__ = ["DEFAULT_URL", "INSTALL_HINT", "init_admin"]

#: Where ``init_admin`` mounts the console it creates when the host has no ``Admin``.
DEFAULT_URL = "/havn-admin"
INSTALL_HINT = 'pip install "flask-havn[admin]"'


def init_admin(admin: Any = None, *, app: Optional[Flask] = None, url: str = DEFAULT_URL, name: str = "HAVN",
               authorize: Optional[Callable[[], bool]] = None) -> Any:
    """Add flask_havn's views to ``admin`` (or to a new ``Admin`` at ``url``); return the ``Admin``.

    ``app`` defaults to ``admin.app``, then the current app; it must already
    have the HAVN extension with a database. ``authorize`` replaces
    ``@havn.authorize`` for the console only (e.g. operators only). Raises
    :class:`HAVNConfigError` without Flask-Admin, without an app, without the
    extension's database, or when the console is already on the app.
    """
    try:
        import flask_admin  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise HAVNConfigError(f"The HAVN operator console needs Flask-Admin: {INSTALL_HINT}") from None
    from . import views

    target = app if app is not None else getattr(admin, "app", None)
    if target is None and has_app_context():
        target = current_app._get_current_object()  # type: ignore[attr-defined]
    if target is None:
        raise HAVNConfigError("havn.init_admin needs the Flask app: pass app=…, an Admin bound to the app, "
                              "or call it inside app.app_context()")
    if authorize is not None and not callable(authorize):
        raise HAVNConfigError("init_admin(authorize=…) needs a function returning True to allow a request")
    if "havn_dashboard" in target.blueprints:
        raise HAVNConfigError("the HAVN console is already on this app: call havn.init_admin once per app")
    views.templates_registered(target)
    if admin is None:
        admin = views.create_admin(target, url=url, name=name, authorize=authorize)
    views.add_views(admin, target, authorize=authorize)
    return admin

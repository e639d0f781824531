"""The HAVN sandbox: a stateful, wire-compatible emulator of HAVN's API.

``create_app(config)`` builds a standalone Flask (WSGI) app; ``SandboxServer``
runs one on an ephemeral loopback port in a thread; ``WSGIAdapter`` serves one
in-process to ``requests``. Names are imported lazily so that importing
``flask_havn.sandbox`` (e.g. by the pytest plugin) costs nothing.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .adapter import WSGIAdapter
    from .app import create_app
    from .backend import SandboxBackend
    from .server import SandboxServer
    from .settings import SandboxSettings

__all__ = ["create_app", "SandboxServer", "WSGIAdapter", "SandboxSettings", "SandboxBackend"]

_WHERE = {
    "create_app": ".app",
    "SandboxServer": ".server",
    "WSGIAdapter": ".adapter",
    "SandboxSettings": ".settings",
    "SandboxBackend": ".backend",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

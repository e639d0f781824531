"""Which ``Host`` names the sandbox answers: a guard against DNS rebinding (WSGI middleware, no Flask).

A web page can make a browser send requests to ``http://evil.example:8765/``
after pointing ``evil.example`` at 127.0.0.1 (DNS rebinding); the browser then
treats the sandbox as the page's own origin and could read and drive it. The
``Host`` header still says ``evil.example``, so the sandbox answers only
requests addressed to a loopback name (``localhost``, ``127.0.0.0/8``,
``[::1]``, any port) or to a name it was told to serve (and its in-process
name ``havn-sandbox.invalid``, which DNS never resolves), and refuses the rest
with a 421 before anything else runs.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

from werkzeug.wsgi import get_host

__all__ = ["HostGuard", "hostname", "is_loopback"]

log = logging.getLogger("flask_havn.sandbox")

_SHOWN = 100
_NAME = re.compile(r"^[a-z0-9_.-]+$")


def hostname(host: str) -> Optional[str]:
    """The lower-case name in a ``Host`` value, without port or brackets (``None``: not a host name)."""
    try:
        name = urlsplit("//" + host.strip()).hostname
    except ValueError:
        return None
    name = name.rstrip(".") if name else None
    if not name or not (_NAME.match(name) or ":" in name and _is_ip(name)):
        return None
    return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(name: str) -> bool:
    """True for ``localhost``, any 127.0.0.0/8 address and ``::1``."""
    return name == "localhost" or _is_ip(name) and ipaddress.ip_address(name).is_loopback


class HostGuard:
    """Answer 421 (JSON) to any request whose ``Host`` is not allowed; pass the rest to ``app``.

    ``allowed(name)`` decides for a name that is not loopback (loopback names
    always pass). ``hint`` ends the refusal message: how to allow a name.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], allowed: Callable[[str], bool], *, hint: str) -> None:
        self.app = app
        self.allowed = allowed
        self.hint = hint

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = get_host(environ)
        name = hostname(host)
        if name is not None and (is_loopback(name) or self.allowed(name)):
            return self.app(environ, start_response)
        shown = host if len(host) <= _SHOWN else host[:_SHOWN] + "…"
        log.warning("sandbox refused a request for Host %r (not a loopback or allowed name)", shown)
        body = json.dumps({
            "error": "MisdirectedRequest",
            "message": f"The HAVN sandbox answers only requests addressed to localhost, 127.0.0.1 or [::1] "
                       f"or to a name it serves, not {shown!r} (a guard against DNS rebinding); {self.hint}",
        }).encode("utf-8")
        headers: List[Tuple[str, str]] = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("421 MISDIRECTED REQUEST", headers)
        return [body]

"""A ``requests`` transport adapter that serves a WSGI app in-process (no Flask import).

Mount it on a session and every request to that prefix runs the app directly,
with no socket, and comes back as a real :class:`requests.Response`::

    session.mount("http://havn-sandbox.invalid", WSGIAdapter(create_app()))

Injected faults map to what ``requests`` raises over a network: a ``drop``
becomes :class:`requests.ConnectionError`, a ``hang`` longer than the
request's read timeout :class:`requests.ReadTimeout` (the timeout travels in
``environ["havn_sandbox.timeout"]``).
"""
from __future__ import annotations

import io
import time
from datetime import timedelta
from typing import Any, Callable, Iterable, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPResponse

try:
    from urllib3 import HTTPHeaderDict
except ImportError:  # pragma: no cover - urllib3 1.26
    from urllib3._collections import HTTPHeaderDict  # type: ignore[no-redef]
from werkzeug.test import EnvironBuilder, run_wsgi_app

from .faults import TIMEOUT_ENVIRON_KEY, ConnectionDropped, HangTimeout

__all__ = ["WSGIAdapter"]

TimeoutArg = Union[None, float, Tuple[Optional[float], Optional[float]], Any]


def _read_timeout(timeout: TimeoutArg) -> Optional[float]:
    """The read part of whatever ``requests`` accepts as ``timeout``."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        return None if len(timeout) < 2 or timeout[1] is None else float(timeout[1])
    if isinstance(timeout, (int, float)):
        return float(timeout)
    try:  # a urllib3.Timeout
        return float(timeout.read_timeout)
    except (AttributeError, TypeError, ValueError):
        return None


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return b"".join(chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk) for chunk in body)


class WSGIAdapter(BaseAdapter):
    """Serve ``app`` (any WSGI callable) to ``requests`` without a server."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        super().__init__()
        self.app = app

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: TimeoutArg = None,
        verify: Union[bool, str] = True,
        cert: Any = None,
        proxies: Optional[Mapping[str, str]] = None,
    ) -> requests.Response:
        """Run the app for ``request`` and wrap its answer as a ``requests.Response``."""
        started = time.perf_counter()
        url = urlsplit(request.url or "")
        # The body is handed over whole, so its length is known: drop the framing headers.
        headers = [(k, v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in request.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding")]
        builder = EnvironBuilder(
            path=url.path or "/",
            base_url=f"{url.scheme}://{url.netloc}",
            query_string=url.query,
            method=request.method or "GET",
            headers=headers,
            data=_body_bytes(request.body),
            environ_overrides={TIMEOUT_ENVIRON_KEY: _read_timeout(timeout)},
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        try:
            app_iter, status, response_headers = run_wsgi_app(self.app, environ, buffered=True)
        except ConnectionDropped as exc:
            raise requests.ConnectionError(str(exc), request=request) from exc
        except HangTimeout as exc:
            raise requests.ReadTimeout(str(exc), request=request) from exc
        try:
            content = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()

        code_text, _, reason = status.partition(" ")
        raw_headers = HTTPHeaderDict()
        for key, value in response_headers.items():
            raw_headers.add(key, value)
        raw = HTTPResponse(
            body=io.BytesIO(content),
            headers=raw_headers,
            status=int(code_text),
            reason=reason,
            preload_content=False,
            decode_content=False,
            request_method=request.method,
            request_url=request.url,
        )
        response = requests.Response()
        response.status_code = int(code_text)
        response.reason = reason
        response.headers = CaseInsensitiveDict(raw.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = raw
        response.url = request.url or ""
        response.request = request
        response.connection = self  # type: ignore[assignment]  # requests types it as HTTPAdapter
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        return response

    def close(self) -> None:
        """Nothing to release: there are no connections."""

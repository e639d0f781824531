"""Shared helpers for the client/transport tests: a scripted loopback HAVN, fake clock, factories.

Import the fixtures into a test module with ``from _client_fixtures import *``.
"""
from __future__ import annotations

import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import pytest
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from flask_havn.client import HAVNClient
from flask_havn.transport import Transport

__all__ = [
    "API_KEY",
    "SECRET",
    "Seen",
    "FakeClock",
    "Script",
    "json_response",
    "script",
    "clock",
    "make_transport",
    "make_client",
    "closed_port_url",
    "hanging_url",
    "KEEPALIVE_ANSWER",
    "keepalive_server",
]

API_KEY = "ak_live_0123456789abcdef"
SECRET = "test_secret"


@dataclass
class Seen:
    """One request as the loopback server received it."""

    method: str
    path: str
    headers: Dict[str, str]
    body: bytes
    args: Dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class FakeClock:
    """``clock()`` and ``sleep()`` in one: sleeping records the wait and advances time."""

    now: float = 1_700_000_000.0
    sleeps: List[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def json_response(body: Any = None, status: int = 200, headers: Optional[Dict[str, str]] = None) -> Response:
    data = b"" if body is None else json.dumps(body).encode()
    return Response(data, status=status, headers=headers or {}, content_type="application/json")


Reply = Union[Response, Callable[[Seen], Response]]


class Script:
    """The server's answers, in order (the last one repeats), and every request seen."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.replies: List[Reply] = []
        self.seen: List[Seen] = []
        server.expect_request(re.compile(".*")).respond_with_handler(self._handle)

    def reply(self, *replies: Reply) -> "Script":
        self.replies = list(replies)
        return self

    def _handle(self, request: Request) -> Response:
        seen = Seen(
            method=request.method,
            path=request.path,
            headers={k: v for k, v in request.headers.items()},
            body=request.get_data(),
            args=dict(request.args),
        )
        self.seen.append(seen)
        if not self.replies:
            return json_response({"success": True})
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return reply(seen) if callable(reply) and not isinstance(reply, Response) else reply


@pytest.fixture
def script(httpserver: HTTPServer) -> Script:
    """A scripted HAVN on loopback; by default it answers ``{"success": true}``."""
    return Script(httpserver)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _loopback_options(httpserver: HTTPServer, clock: FakeClock) -> Dict[str, Any]:
    """Credentials, the loopback URL, the fake clock and no jitter: what both factories start from."""
    return dict(api_key=API_KEY, webhook_secret=SECRET, base_url=httpserver.url_for("/"),
                sleep=clock.sleep, clock=clock, jitter=lambda: 0.0, timeout=5)


@pytest.fixture
def make_transport(httpserver: HTTPServer, clock: FakeClock) -> Iterator[Callable[..., Transport]]:
    """Factory of transports pointed at the loopback server, closed at teardown."""
    made: List[Transport] = []

    def factory(**options: Any) -> Transport:
        kw = {**_loopback_options(httpserver, clock), **options}
        transport = Transport(**kw)
        made.append(transport)
        return transport

    yield factory
    for transport in made:
        transport.close()


@pytest.fixture
def make_client(httpserver: HTTPServer, clock: FakeClock) -> Iterator[Callable[..., HAVNClient]]:
    """Factory of clients pointed at the loopback server, closed at teardown."""
    made: List[HAVNClient] = []

    def factory(**options: Any) -> HAVNClient:
        kw = {**_loopback_options(httpserver, clock), **options}
        client = HAVNClient(**kw)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """A loopback URL that accepts connections (kernel backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


#: What :func:`keepalive_server` answers to every POST.
KEEPALIVE_ANSWER = {"success": True, "message": "ok", "referral_code": "HAVN-OW-001", "user_id": "usr_1"}


@pytest.fixture
def keepalive_server() -> Iterator[Tuple[str, List[int]]]:
    """A loopback HTTP/1.1 keep-alive server (stdlib; werkzeug's always closes) recording callers' ports.

    Yields its URL and the client port of every POST, in order: one port seen
    twice is one pooled connection used twice.
    """
    ports: List[int] = []
    answer = json.dumps(KEEPALIVE_ANSWER).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            ports.append(self.client_address[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", ports
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""What the benchmarks talk to: a loopback keep-alive server, and an adapter that records the wire.

:func:`fixed_answer_server` is stdlib ``http.server`` in a thread on an
ephemeral port: cheap, identical for the candidate and its baseline, and it
keeps connections open so a pooled client pays no TCP handshake per call.
:class:`CaptureAdapter` keeps the requests a client prepares, so a baseline
can send exactly the same bytes and headers.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, List

import requests
from requests.adapters import BaseAdapter


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY the second waits
    # for the client's delayed ACK (~40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        answer: bytes = self.server.answer  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def fixed_answer_server(answer: bytes) -> Iterator[str]:
    """Serve ``answer`` (JSON bytes, status 200) to every POST; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.answer = answer  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class CaptureAdapter(BaseAdapter):
    """Records every prepared request and answers each with ``answer`` (status 200), no network."""

    def __init__(self, answer: bytes) -> None:
        super().__init__()
        self.answer = answer
        self.requests: List[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.requests.append(request)
        response = requests.Response()
        response.status_code = 200
        response._content = self.answer
        response.request = request
        return response

    def close(self) -> None:
        pass

"""The pooled per-app transport against a fresh connection per call (what a naive client does).

Both sides send the same signed user-sync call to a loopback HTTP/1.1
keep-alive server; the ratio shows what connection pooling below the
request-scoped client saves.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from contextlib import contextmanager
from typing import Any, Iterator, Tuple

from flask_havn.client import HAVNClient
from flask_havn.transport import Transport

from ._timing import best_of, report

_ANSWER = json.dumps({"success": True, "referral_code": "HAVN-AB-001", "user_id": "usr_1"}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY the second waits
    # for the client's delayed ACK (~40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_ANSWER)))
        self.end_headers()
        self.wfile.write(_ANSWER)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run(quick: bool = False) -> Tuple[float, float]:
    number, repeat = (20, 2) if quick else (200, 5)
    with _server() as url:
        pooled = HAVNClient(transport=Transport(api_key="k", webhook_secret="s", base_url=url))

        def ours() -> None:
            pooled.users.sync(email="o@example.com", name="Owner")

        def fresh_connection() -> None:
            with HAVNClient(api_key="k", webhook_secret="s", base_url=url) as client:
                client.users.sync(email="o@example.com", name="Owner")

        ours()
        fresh_connection()
        t_ours = best_of(ours, repeat=repeat, number=number)
        t_base = best_of(fresh_connection, repeat=repeat, number=number)
        pooled.close()
    report("user-sync call, pooled per-app transport", t_ours, t_base, "new connection per call")
    return t_ours, t_base


if __name__ == "__main__":
    run()

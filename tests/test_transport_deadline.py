"""HAVN_TIMEOUT bounds one whole attempt (connect, send, status, headers, body), and a call has a known maximum."""
from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Iterator, List

import pytest

from _client_fixtures import *  # noqa: F401,F403 - fixtures
from _client_fixtures import API_KEY, SECRET, FakeClock, Script, json_response
from flask_havn._deadline import _arm, attempt_deadline
from flask_havn.errors import HAVNAPIError, HAVNNetworkError
from flask_havn.transport import Transport, max_call_seconds

BODY = b'{"success": true}'
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
#: Seconds between two trickled bytes: each socket read gets a byte well within the read timeout.
TRICKLE = 0.3


class TrickleServer:
    """A raw loopback server: reads a request, then sends the answer one byte every 0.3 s.

    ``prompt`` bytes go out at once (e.g. the headers), the rest trickles. It
    stops by itself when the answer is out or the client hangs up, and serves
    at most ``connections`` connections. ``sent`` counts the bytes of each
    connection that reached the client.
    """

    def __init__(self, prompt: bytes, trickled: bytes, connections: int = 1) -> None:
        self.prompt, self.trickled = prompt, trickled
        self.sent: List[int] = []
        self.hung_up: List[bool] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(connections)
        self._listener.settimeout(30)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, args=(connections,), daemon=True)
        self._thread.start()

    def _serve(self, connections: int) -> None:
        for _ in range(connections):
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(65536)
            if not chunk:
                return
            received += chunk
        sent, hung_up = 0, False
        try:
            conn.sendall(self.prompt)
            sent = len(self.prompt)
            for index in range(len(self.trickled)):
                time.sleep(TRICKLE)
                conn.sendall(self.trickled[index:index + 1])
                sent += 1
        except OSError:  # the client closed the connection: a send fails with EPIPE or ECONNRESET
            hung_up = True
        self.sent.append(sent)
        self.hung_up.append(hung_up)

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=60)


@pytest.fixture
def trickle() -> Iterator:
    made: List[TrickleServer] = []

    def factory(prompt: bytes, trickled: bytes, connections: int = 1) -> TrickleServer:
        made.append(TrickleServer(prompt, trickled, connections))
        return made[-1]

    yield factory
    for server in made:
        server.close()


@pytest.mark.parametrize("prompt, trickled", [
    (b"", HEAD + BODY),  # the status line and the headers trickle
    (HEAD, BODY),        # the headers come at once, the body trickles
], ids=["headers", "body"])
def test_a_trickling_answer_ends_the_attempt_at_the_timeout(trickle, prompt, trickled):
    server = trickle(prompt, trickled)
    # Every read gets a byte within 0.3 s, far inside the 1 s read timeout: only a total deadline stops this.
    with Transport(api_key=API_KEY, webhook_secret=SECRET, base_url=server.url, timeout=1,
                   max_retries=0) as transport:
        with pytest.raises(HAVNNetworkError) as info:
            transport.request("POST", "/api/v1/webhook/transaction", payload={"amount": 1})
    server.close()
    message = info.value.message
    assert "did not answer within 1s" in message and "1 attempt" in message and "HAVN_TIMEOUT" in message
    # The client hung up with most of the answer still unsent (all of it takes several seconds to trickle).
    assert server.hung_up == [True]
    assert len(prompt) <= server.sent[0] < len(prompt + trickled) - 5


def test_each_retry_gets_its_own_deadline(trickle, clock: FakeClock):
    server = trickle(HEAD, BODY, connections=2)
    with Transport(api_key=API_KEY, webhook_secret=SECRET, base_url=server.url, timeout=1, max_retries=1,
                   sleep=clock.sleep, clock=clock, jitter=lambda: 0.0) as transport:
        with pytest.raises(HAVNNetworkError, match="did not answer within 1s .*2 attempts"):
            transport.request("GET", "/api/v1/webhook/vouchers")
    server.close()
    assert clock.sleeps == [0.5]
    assert server.hung_up == [True, True]
    assert all(sent < len(HEAD + BODY) for sent in server.sent)


def test_an_answer_within_the_deadline_is_read_whole(trickle):
    server = trickle(HEAD + BODY[:-2], BODY[-2:])  # two trickled bytes: 0.6 s, inside the 5 s budget
    with Transport(api_key=API_KEY, webhook_secret=SECRET, base_url=server.url, timeout=5,
                   max_retries=0) as transport:
        assert transport.request("POST", "/x", payload={}) == {"success": True}
    server.close()
    assert server.sent == [len(HEAD + BODY)] and server.hung_up == [False]


def test_tls_sockets_get_the_deadline_too():
    context = ssl.create_default_context()
    with context.wrap_socket(socket.socket(), server_hostname="api.havn.com",
                             do_handshake_on_connect=False) as sock:
        _arm(sock)
        assert isinstance(sock, ssl.SSLSocket) and type(sock) is not ssl.SSLSocket
        with attempt_deadline(0):
            with pytest.raises(socket.timeout, match="deadline passed"):
                sock.recv_into(bytearray(1))
    with socket.socket() as plain:
        _arm(plain)
        with attempt_deadline(0):
            with pytest.raises(socket.timeout):
                plain.sendall(b"x")
        plain.settimeout(7.0)
        with attempt_deadline(2.0), pytest.raises(OSError) as info:
            plain.recv(1)  # not connected: the OS refuses, after the timeout was cut to the time left
        assert not isinstance(info.value, socket.timeout)
        assert 0 < plain.gettimeout() <= 2.0


def test_nested_deadlines_keep_the_earlier_one():
    with attempt_deadline(10) as outer:
        with attempt_deadline(60) as inner:
            assert inner == outer
        with attempt_deadline(1) as shorter:
            assert shorter < outer


# -- the longest call -------------------------------------------------------------------


def test_max_call_seconds_is_every_attempt_plus_the_wait_budget():
    assert max_call_seconds(30, 3, 60) == 180
    assert max_call_seconds(1.5, 0, 0) == 1.5
    with Transport(api_key=API_KEY, webhook_secret=SECRET, timeout=2, max_retries=3,
                   max_total_wait=45) as transport:
        assert transport.max_call_seconds() == 4 * 2 + 45


def test_server_hints_cannot_stretch_a_call_past_max_call_seconds(script: Script, make_transport, clock: FakeClock):
    script.reply(json_response({}, 503, {"Retry-After": "40"}))
    transport = make_transport(timeout=5, max_retries=5, max_total_wait=60)
    with pytest.raises(HAVNAPIError):
        transport.request("POST", "/x", payload={})
    # 40 s once; a second 40 s would pass the 60 s budget, so the call ends instead.
    assert clock.sleeps == [40.0]
    assert len(script.seen) * transport.timeout + sum(clock.sleeps) <= transport.max_call_seconds() == 90

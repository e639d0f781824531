"""One requests.Session per thread inside a Transport: mounts reach all of them, close() closes all of them."""
from __future__ import annotations

import gc
import json
import threading
import weakref
from typing import Any, Dict, List

import pytest
import requests

from _client_fixtures import *  # noqa: F401,F403 - fixtures (keepalive_server)
from _client_fixtures import KEEPALIVE_ANSWER
from flask_havn.transport import Transport

ANSWER = json.dumps({"success": True}).encode()
SANDBOX = "http://havn-sandbox.invalid"


class Recording(requests.adapters.BaseAdapter):
    """An in-process adapter that answers ``{"success": true}`` and counts closes."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.closed = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent += 1
        response = requests.Response()
        response.status_code = 200
        response._content = ANSWER
        response.request = request
        return response

    def close(self) -> None:
        self.closed += 1


def _in_two_threads(work) -> List[Any]:
    """Run ``work()`` in two threads that are alive at the same time; their results in thread order."""
    both_in = threading.Barrier(2, timeout=10)
    results: Dict[int, Any] = {}
    errors: List[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = work()
            both_in.wait()  # neither thread ends (and gives its session back) before the other has one
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not errors, errors
    return [results[0], results[1]]


def test_threads_get_their_own_sessions_with_every_mount_and_close_closes_them_all(keepalive_server):
    url, ports = keepalive_server
    transport = Transport(api_key="k", webhook_secret="s", base_url=url)
    early = Recording()
    transport.mount(SANDBOX, early)

    def work() -> requests.Session:
        assert transport.request("POST", "/x", payload={}) == KEEPALIVE_ANSWER
        return transport.session

    first, second = _in_two_threads(work)
    assert first is not second
    assert len(set(ports)) == 2  # two sessions, two pooled connections
    late = Recording()
    transport.mount(SANDBOX + "/late", late)  # after the sessions exist: they get it too
    for session in (first, second):
        assert session.get_adapter(SANDBOX + "/api") is early
        assert session.get_adapter(SANDBOX + "/late/api") is late
        assert len(session.get_adapter(url).poolmanager.pools) == 1
    transport.close()
    assert early.closed == 2 and late.closed == 2  # once by each thread's session
    for session in (first, second):
        assert len(session.get_adapter(url).poolmanager.pools) == 0


def test_a_mounted_adapter_serves_every_thread():
    transport = Transport(api_key="k", webhook_secret="s", base_url=SANDBOX)
    sandbox = Recording()
    transport.mount(SANDBOX, sandbox)
    answers = _in_two_threads(lambda: transport.request("POST", "/api/v1/webhook/login", payload={"email": "a@b.co"}))
    assert answers == [{"success": True}, {"success": True}]
    assert sandbox.sent == 2
    transport.close()


def test_one_thread_keeps_one_session_and_one_connection(keepalive_server):
    url, ports = keepalive_server
    with Transport(api_key="k", webhook_secret="s", base_url=url) as transport:
        sessions = set()
        for _ in range(3):
            transport.request("POST", "/x", payload={})
            sessions.add(id(transport.session))
    assert len(sessions) == 1
    assert len(ports) == 3 and len(set(ports)) == 1


def test_a_finished_threads_session_and_connection_serve_the_next_thread(keepalive_server):
    url, ports = keepalive_server
    transport = Transport(api_key="k", webhook_secret="s", base_url=url)
    seen: List[requests.Session] = []

    def one_call() -> None:
        transport.request("POST", "/x", payload={})
        seen.append(transport.session)

    for _ in range(3):  # e.g. a thread per request, or per delivery pass
        thread = threading.Thread(target=one_call)
        thread.start()
        thread.join(timeout=10)
    transport.close()
    assert len(seen) == 3 and seen[0] is seen[1] is seen[2]
    assert len(ports) == 3 and len(set(ports)) == 1


def test_a_transport_works_again_after_close_with_new_sessions(keepalive_server):
    url, ports = keepalive_server
    transport = Transport(api_key="k", webhook_secret="s", base_url=url)
    transport.request("POST", "/x", payload={})
    before = transport.session
    transport.close()
    assert transport.request("POST", "/x", payload={}) == KEEPALIVE_ANSWER
    assert transport.session is not before
    transport.close()
    assert len(ports) == 2 and ports[0] != ports[1]


def test_environment_proxies_are_read_once_per_session(keepalive_server, monkeypatch: pytest.MonkeyPatch):
    url, ports = keepalive_server
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    with Transport(api_key="k", webhook_secret="s", base_url=url) as transport:
        transport.request("POST", "/x", payload={})  # NO_PROXY covers the loopback host: straight there
        session = transport.session
        assert session.trust_env is False and session.proxies == {}
        assert session.verify == "/etc/ssl/certs/ca-certificates.crt"
    with Transport(api_key="k", webhook_secret="s", base_url="https://api.havn.com") as remote:
        assert remote.session.proxies.get("http") == "http://proxy.invalid:3128"
    assert len(ports) == 1


def test_a_transport_dropped_without_close_is_freed_and_its_session_closed(keepalive_server):
    url, ports = keepalive_server
    transport = Transport(api_key="k", webhook_secret="s", base_url=url)
    transport.request("POST", "/x", payload={})
    session = transport.session
    assert len(session.get_adapter(url).poolmanager.pools) == 1
    alive = weakref.ref(transport)
    del transport
    gc.collect()
    # This (long-lived) thread still ran a call: its session must not pin the transport.
    assert alive() is None
    assert len(session.get_adapter(url).poolmanager.pools) == 0

"""Fault injection (sandbox/faults.py): each fault kind, in-process and over real HTTP."""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests
from flask import Flask

from flask_havn.errors import HAVNAPIError
from flask_havn.sandbox.adapter import WSGIAdapter
from flask_havn.sandbox.faults import (
    FAULT_KINDS,
    ConnectionDropped,
    FaultInjector,
    HangTimeout,
    normalise_spec,
)
from flask_havn.sandbox.server import SandboxServer
from flask_havn.transport import Transport

BASE = "http://fault-test.invalid"


class Backend:
    """A tiny WSGI app that counts what actually reached it."""

    def __init__(self) -> None:
        self.calls: List[str] = []
        self.app = Flask("fault-test")

        @self.app.route("/api/v1/thing", methods=["GET", "POST"])
        def thing() -> Any:
            self.calls.append("thing")
            return {"stored": len(self.calls)}, 201

        @self.app.get("/_sandbox/state")
        def state() -> Any:
            return {"calls": len(self.calls)}

        @self.app.get("/login")
        def login() -> Any:
            return {"page": "login"}


class Sleeps:
    """An injected sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.calls: List[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make(backend: Backend, spec: Optional[Dict[str, Any]] = None, sleep: Any = None) -> FaultInjector:
    injector = FaultInjector(backend.app.wsgi_app, spec, sleep=sleep, clock=lambda: 1_800_000_000.0)
    backend.app.wsgi_app = injector  # type: ignore[method-assign]
    return injector


@pytest.fixture
def session(backend: Backend) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.mount(BASE, WSGIAdapter(backend.app))
        yield s


# -- the spec ---------------------------------------------------------------


def test_spec_is_normalised() -> None:
    spec = normalise_spec({"seed": 3, "rates": {500: 0.25, "drop": 0.5, "hang": 0}, "latency": 1})
    assert spec == {"seed": 3, "rates": {"500": 0.25, "drop": 0.5}, "latency": 1.0,
                    "hang_seconds": 30.0, "burst_429": 0}


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ([1, 2], "JSON object"),
        ({"sed": 1}, "unknown fault spec key"),
        ({"rates": {"418": 0.1}}, "unknown fault kind '418'"),
        ({"rates": {"500": 1.5}}, "between 0 and 1"),
        ({"rates": {"500": -0.1}}, "between 0 and 1"),
        ({"rates": {"500": float("nan")}}, "between 0 and 1"),
        ({"rates": {"500": True}}, "must be a number"),
        ({"rates": {"500": "0.5"}}, "must be a number"),
        ({"rates": {"500": 0.6, "503": 0.6}}, "more than 1"),
        ({"rates": [0.1]}, "'rates' must be an object"),
        ({"seed": "7"}, "'seed' must be an integer"),
        ({"seed": True}, "'seed' must be an integer"),
        ({"burst_429": -1}, "burst_429"),
        ({"burst_429": 1.5}, "burst_429"),
        ({"latency": -1}, "latency"),
        ({"hang_seconds": 10 ** 9}, "hang_seconds"),
    ],
)
def test_bad_specs_are_refused_with_a_reason(backend: Backend, spec: Any, fragment: str) -> None:
    injector = make(backend)
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        injector.configure(spec)
    assert injector.spec is None  # a refused spec changes nothing


# -- each kind --------------------------------------------------------------


@pytest.mark.parametrize("kind, error", [("500", "InternalServerError"), ("502", "BadGateway"),
                                         ("503", "ServiceUnavailable"), ("429", "RateLimitExceeded")])
def test_error_faults_answer_before_the_app_runs(
    backend: Backend, session: requests.Session, kind: str, error: str
) -> None:
    injector = make(backend, {"rates": {kind: 1.0}})
    response = session.post(BASE + "/api/v1/thing", json={"a": 1})
    assert response.status_code == int(kind)
    assert response.json()["error"] == error
    assert "retry" in response.json()["message"]
    assert response.headers["X-Request-Id"].startswith("req_")
    assert backend.calls == []  # nothing stored
    assert injector.stats()[kind] == 1 and injector.stats()["requests"] == 1
    assert int(response.headers["X-RateLimit-Limit"]) == 60  # every HAVN answer carries the three
    if kind == "429":
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert int(response.headers["X-RateLimit-Reset"]) == 1_800_000_003
    else:
        assert response.headers["X-RateLimit-Remaining"] == "59"
        assert int(response.headers["X-RateLimit-Reset"]) == 1_800_000_060  # end of the 60 s window


def test_injected_hang_answer_carries_rate_limit_headers(
    backend: Backend, session: requests.Session, sleeps: Sleeps
) -> None:
    make(backend, {"rates": {"hang": 1.0}, "hang_seconds": 1}, sleep=sleeps)
    response = session.post(BASE + "/api/v1/thing", json={})
    assert response.status_code == 504
    assert (response.headers["X-RateLimit-Limit"], response.headers["X-RateLimit-Remaining"],
            response.headers["X-RateLimit-Reset"]) == ("60", "59", "1800000060")


def test_client_waits_only_its_backoff_on_an_injected_503(backend: Backend) -> None:
    """The transport reads the injected 503's X-RateLimit-Reset (60 s away) as no wait: Remaining is 59."""
    injector = make(backend, {"burst_429": 0, "rates": {"503": 1.0}})
    waits: List[float] = []
    transport = Transport(api_key="k", webhook_secret="s", base_url=BASE, max_retries=2, backoff_factor=0.5,
                          sleep=waits.append, clock=lambda: 1_800_000_000.0, jitter=lambda: 0.0)
    transport.mount(BASE, WSGIAdapter(backend.app))
    with transport, pytest.raises(HAVNAPIError) as info:
        transport.request("POST", "/api/v1/thing", payload={"a": 1})
    assert info.value.status_code == 503
    assert waits == [0.5, 1.0]
    assert injector.stats()["503"] == 3 and backend.calls == []
    injector.configure({"burst_429": 1})  # a 429 still waits for its Reset (3 s away)
    assert transport.request("POST", "/api/v1/thing", payload={"a": 1}) == {"stored": 1}
    assert waits == [0.5, 1.0, 3.0]


def test_burst_429_then_normal(backend: Backend, session: requests.Session) -> None:
    injector = make(backend, {"burst_429": 2})
    codes = [session.post(BASE + "/api/v1/thing", json={}).status_code for _ in range(4)]
    assert codes == [429, 429, 201, 201]
    assert backend.calls == ["thing", "thing"]
    assert injector.stats()["burst_429"] == 2 and injector.stats()["burst_429_remaining"] == 0


def test_latency_is_added_to_every_api_answer(
    backend: Backend, session: requests.Session, sleeps: Sleeps
) -> None:
    make(backend, {"latency": 0.25, "rates": {"503": 0.5}, "seed": 1}, sleep=sleeps)
    statuses = [session.get(BASE + "/api/v1/thing").status_code for _ in range(6)]
    assert sleeps.calls == [0.25] * 6
    assert set(statuses) <= {201, 503}
    session.get(BASE + "/_sandbox/state")
    assert len(sleeps.calls) == 6  # control routes are never slowed


def test_hang_longer_than_the_read_timeout_is_a_read_timeout(
    backend: Backend, session: requests.Session, sleeps: Sleeps
) -> None:
    make(backend, {"rates": {"hang": 1.0}, "hang_seconds": 30}, sleep=sleeps)
    with pytest.raises(requests.ReadTimeout):
        session.post(BASE + "/api/v1/thing", json={}, timeout=(1, 0.5))
    assert sleeps.calls == [0.5]  # waited the caller's timeout, not 30 s
    assert backend.calls == []


def test_hang_without_timeout_answers_504(backend: Backend, session: requests.Session, sleeps: Sleeps) -> None:
    make(backend, {"rates": {"hang": 1.0}, "hang_seconds": 2}, sleep=sleeps)
    response = session.post(BASE + "/api/v1/thing", json={})
    assert response.status_code == 504
    assert response.json()["error"] == "GatewayTimeout"
    assert sleeps.calls == [2.0]
    response = session.post(BASE + "/api/v1/thing", json={}, timeout=5)  # timeout longer than the hang
    assert response.status_code == 504


def test_drop_in_process_is_a_connection_error_after_the_app_ran(
    backend: Backend, session: requests.Session
) -> None:
    injector = make(backend, {"rates": {"drop": 1.0}})
    with pytest.raises(requests.ConnectionError):
        session.post(BASE + "/api/v1/thing", json={})
    assert backend.calls == ["thing"]  # HAVN stored it
    assert injector.stats()["drop"] == 1


def test_drop_raises_connection_dropped_for_plain_wsgi_callers(backend: Backend) -> None:
    make(backend, {"rates": {"drop": 1.0}})
    client = backend.app.test_client()
    with pytest.raises(ConnectionDropped):
        client.post("/api/v1/thing", json={})
    assert backend.calls == ["thing"]
    assert issubclass(HangTimeout, TimeoutError)


def test_faults_never_touch_control_or_frontend_paths(backend: Backend, session: requests.Session) -> None:
    injector = make(backend, {"rates": {"500": 1.0}, "burst_429": 5})
    assert session.get(BASE + "/_sandbox/state").status_code == 200
    assert session.get(BASE + "/login").status_code == 200
    assert injector.stats()["requests"] == 0
    assert injector.stats()["burst_429_remaining"] == 5


def test_clear_stops_faults_and_zeroes_stats(backend: Backend, session: requests.Session) -> None:
    injector = make(backend, {"rates": {"500": 1.0}})
    assert session.get(BASE + "/api/v1/thing").status_code == 500
    injector.clear()
    assert injector.spec is None
    assert session.get(BASE + "/api/v1/thing").status_code == 201
    assert injector.stats()["requests"] == 0


# -- determinism ------------------------------------------------------------


def outcomes(seed: int, n: int = 60) -> List[Any]:
    backend = Backend()
    make(backend, {"seed": seed, "rates": {"500": 0.2, "502": 0.1, "503": 0.1, "429": 0.1}})
    client = backend.app.test_client()
    return [client.get("/api/v1/thing").status_code for _ in range(n)]


def test_same_seed_same_faults() -> None:
    first = outcomes(42)
    assert first == outcomes(42)
    assert set(first) == {201, 429, 500, 502, 503}  # the mix really happens
    assert first != outcomes(43)


def test_reconfigure_restarts_the_draws(backend: Backend) -> None:
    injector = make(backend, {"seed": 9, "rates": {"500": 0.5}})
    client = backend.app.test_client()
    first = [client.get("/api/v1/thing").status_code for _ in range(20)]
    injector.configure({"seed": 9, "rates": {"500": 0.5}})
    assert [client.get("/api/v1/thing").status_code for _ in range(20)] == first


def test_all_kinds_are_listed() -> None:
    assert FAULT_KINDS == ("500", "502", "503", "429", "drop", "hang")


# -- over real HTTP ---------------------------------------------------------


@pytest.fixture
def served(backend: Backend) -> Iterator[SandboxServer]:
    server = SandboxServer(backend.app)
    server.start()
    yield server
    server.stop()


def test_drop_over_http_is_a_connection_level_error(backend: Backend, served: SandboxServer) -> None:
    injector = make(backend, {"rates": {"drop": 1.0}})
    with requests.Session() as s:
        with pytest.raises(requests.ConnectionError) as caught:
            s.post(served.url + "/api/v1/thing", json={"amount": 1})
        assert not isinstance(caught.value, requests.HTTPError)
        assert caught.value.response is None  # no status was ever seen
        injector.clear()
        assert s.get(served.url + "/_sandbox/state").json() == {"calls": 1}  # yet it was stored
    assert served.errors == []  # a dropped connection is not a sandbox crash


def test_hang_over_http_times_out_and_stop_releases_it(backend: Backend) -> None:
    server = SandboxServer(backend.app)
    server.start()
    injector = make(backend, {"rates": {"hang": 1.0}, "hang_seconds": 30})
    try:
        with requests.Session() as s:
            with pytest.raises(requests.ReadTimeout):
                s.get(server.url + "/api/v1/thing", timeout=(2, 0.2))
    finally:
        injector.close()  # what SandboxServer.stop() does for a sandbox app's own injector
        server.stop()
    assert injector.stats()["hang"] == 1


@pytest.mark.parametrize("release", ["close", "clear", "configure"])
def test_close_or_clear_wakes_a_stalled_hang(backend: Backend, release: str) -> None:
    make(backend, {"rates": {"hang": 1.0}, "hang_seconds": 60})
    injector = backend.app.wsgi_app
    client = backend.app.test_client()
    results: List[int] = []
    worker = threading.Thread(target=lambda: results.append(client.get("/api/v1/thing").status_code))
    worker.start()
    deadline = time.monotonic() + 5
    while injector.stats()["hang"] == 0 and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)
    if release == "configure":
        injector.configure({"latency": 0})  # type: ignore[union-attr]
    else:
        getattr(injector, release)()
    worker.join(10)
    assert not worker.is_alive()
    assert results == [504]

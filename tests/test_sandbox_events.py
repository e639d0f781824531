"""The webhook dispatcher (sandbox/events.py) against real receivers over loopback HTTP."""
from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests
from flask import Flask, request
from standardwebhooks.webhooks import Webhook

from flask_havn.errors import WebhookVerificationError
from flask_havn.sandbox.events import DEFAULT_SCHEDULE, WebhookDispatcher, new_event_id
from flask_havn.sandbox.server import SandboxServer
from flask_havn.signing import verify_webhook

SECRET = "whsec_" + base64.b64encode(b"sandbox-events-test-key-32-bytes").decode()
DATA = {"transaction": {"transaction_id": "txn_1", "amount": 10000}, "commissions": [], "total_commission": 0}


class Receiver:
    """A tiny webhook receiver: answers ``statuses`` in turn (then 200) and keeps each hit."""

    def __init__(self, statuses: List[int]) -> None:
        self.statuses = list(statuses)
        self.hits: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        app = Flask("receiver")

        @app.post("/hook")
        def hook() -> Any:
            with self.lock:
                self.hits.append({"headers": dict(request.headers), "body": request.get_data()})
                status = self.statuses.pop(0) if self.statuses else 200
            return {"ok": status < 300}, status

        self.server = SandboxServer(app)

    @property
    def url(self) -> str:
        return self.server.url + "/hook"


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    made: List[Receiver] = []

    def make(statuses: List[int]) -> Receiver:
        receiver = Receiver(statuses)
        receiver.server.start()
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.server.stop()


@pytest.fixture
def dispatcher_factory() -> Iterator[Any]:
    made: List[WebhookDispatcher] = []

    def make(**kwargs: Any) -> WebhookDispatcher:
        kwargs.setdefault("secret", SECRET)
        kwargs.setdefault("schedule_factor", 0.001)
        dispatcher = WebhookDispatcher(**kwargs)
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.close()


def ticking_clock() -> Any:
    """Epoch seconds near now that advance by one second on every reading."""
    counter = itertools.count(int(time.time()))
    return lambda: float(next(counter))


def test_envelope_shape_and_ids(dispatcher_factory: Any) -> None:
    dispatcher = dispatcher_factory(clock=lambda: 1795774530.0)
    envelope = dispatcher.emit("commission.distributed", DATA, test_mode=True)
    assert set(envelope) == {"id", "type", "created_at", "test_mode", "data"}
    assert envelope["id"].startswith("evt_") and len(envelope["id"]) >= 28
    assert envelope["type"] == "commission.distributed"
    assert envelope["created_at"] == "2026-11-27T10:15:30Z"
    assert envelope["test_mode"] is True
    assert envelope["data"] == DATA
    assert dispatcher.events() == [envelope]
    assert new_event_id() != new_event_id()


def test_default_schedule_is_the_contracts() -> None:
    assert DEFAULT_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def test_no_url_is_recorded_as_not_delivered(dispatcher_factory: Any) -> None:
    dispatcher = dispatcher_factory()
    envelope = dispatcher.emit("commission.distributed", DATA)
    assert dispatcher.wait_idle(5)
    [entry] = dispatcher.deliveries()
    assert entry["event_id"] == envelope["id"]
    assert entry["delivered"] is False
    assert entry["error"] == "no webhook URL configured"
    assert entry["attempt"] == 0 and entry["status_code"] is None
    assert dispatcher.status(envelope["id"]) == "not_delivered"


def test_fails_twice_then_delivers_with_same_id_fresh_signatures(
    dispatcher_factory: Any, receiver_factory: Any
) -> None:
    receiver = receiver_factory([500, 503])
    dispatcher = dispatcher_factory(url=receiver.url, clock=ticking_clock())
    envelope = dispatcher.emit("commission.distributed", DATA)
    assert dispatcher.wait_idle(10)

    assert len(receiver.hits) == 3
    ids = {hit["headers"]["Webhook-Id"] for hit in receiver.hits}
    assert ids == {envelope["id"]}
    stamps = [int(hit["headers"]["Webhook-Timestamp"]) for hit in receiver.hits]
    assert len(set(stamps)) == 3 and stamps == sorted(stamps)
    signatures = {hit["headers"]["Webhook-Signature"] for hit in receiver.hits}
    assert len(signatures) == 3

    wh = Webhook(SECRET)
    for hit, stamp in zip(receiver.hits, stamps):
        body = hit["body"]
        assert json.loads(body) == envelope  # the exact envelope, as JSON
        headers = {k.lower(): v for k, v in hit["headers"].items()}
        assert wh.verify(body, headers) == envelope
        assert verify_webhook([SECRET], headers, body, now=stamp) == envelope["id"]
        with pytest.raises(WebhookVerificationError):
            verify_webhook([SECRET], headers, body + b" ", now=stamp)

    log = dispatcher.deliveries()
    assert [(e["attempt"], e["status_code"], e["delivered"]) for e in log] == [
        (1, 500, False), (2, 503, False), (3, 200, True)]
    assert {e["event_id"] for e in log} == {envelope["id"]}
    assert log[0]["error"] == "HTTP 500" and log[2]["error"] is None
    assert dispatcher.status(envelope["id"]) == "delivered"


def test_gives_up_after_the_last_attempt(dispatcher_factory: Any, receiver_factory: Any) -> None:
    receiver = receiver_factory([500] * 10)
    dispatcher = dispatcher_factory(url=receiver.url, schedule=(0, 1, 1), schedule_factor=0.001)
    envelope = dispatcher.emit("transaction.conversion_failed", DATA)
    assert dispatcher.wait_idle(10)
    assert len(receiver.hits) == 3
    assert [e["attempt"] for e in dispatcher.deliveries()] == [1, 2, 3]
    assert dispatcher.status(envelope["id"]) == "failed"


def test_connection_refused_is_logged_and_retried(dispatcher_factory: Any, receiver_factory: Any) -> None:
    receiver = receiver_factory([])
    dead_url = receiver.url
    receiver.server.stop()  # nothing listens there any more
    dispatcher = dispatcher_factory(url=dead_url, schedule=(0, 1))
    envelope = dispatcher.emit("commission.distributed", DATA)
    assert dispatcher.wait_idle(10)
    log = dispatcher.deliveries()
    assert len(log) == 2
    assert all(e["status_code"] is None and "ConnectionError" in e["error"] for e in log)
    assert dispatcher.status(envelope["id"]) == "failed"


def test_url_set_later_is_used(dispatcher_factory: Any, receiver_factory: Any) -> None:
    receiver = receiver_factory([])
    dispatcher = dispatcher_factory()
    first = dispatcher.emit("commission.distributed", DATA)
    dispatcher.url = receiver.url
    second = dispatcher.emit("commission.distributed", DATA)
    assert dispatcher.wait_idle(10)
    assert dispatcher.status(first["id"]) == "not_delivered"
    assert dispatcher.status(second["id"]) == "delivered"
    assert [hit["headers"]["Webhook-Id"] for hit in receiver.hits] == [second["id"]]


def test_emit_never_delivers_on_the_callers_thread(dispatcher_factory: Any) -> None:
    seen: List[str] = []

    class RecordingSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            seen.append(threading.current_thread().name)
            raise requests.ConnectionError("no network in this test")

    session = RecordingSession()
    try:
        dispatcher = dispatcher_factory(url="http://receiver.invalid/hook", session=session, schedule=(0,))
        dispatcher.emit("commission.distributed", DATA)
        assert dispatcher.wait_idle(10)
    finally:
        session.close()
    assert seen == ["havn-sandbox-webhooks"]
    assert threading.current_thread().name not in seen


def test_reset_forgets_events_and_queued_retries(dispatcher_factory: Any, receiver_factory: Any) -> None:
    receiver = receiver_factory([500] * 10)
    dispatcher = dispatcher_factory(url=receiver.url, schedule=(0, 60), schedule_factor=1.0)
    dispatcher.emit("commission.distributed", DATA)
    deadline = time.monotonic() + 10
    while not dispatcher.deliveries() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(dispatcher.deliveries()) == 1  # the first attempt failed; a retry waits 60 s
    assert not dispatcher.wait_idle(0.05)
    dispatcher.reset()
    assert dispatcher.wait_idle(1)
    assert dispatcher.events() == [] and dispatcher.deliveries() == []


def test_custom_id_factory_and_closed_dispatcher(dispatcher_factory: Any) -> None:
    ids = iter(["evt_aaaaaaaaaaaaaaaaaaaaaaaa", "evt_bbbbbbbbbbbbbbbbbbbbbbbb"])
    dispatcher = dispatcher_factory(id_factory=lambda: next(ids))
    assert dispatcher.emit("commission.distributed", DATA)["id"] == "evt_aaaaaaaaaaaaaaaaaaaaaaaa"
    assert dispatcher.emit("commission.distributed", DATA, event_id="evt_given")["id"] == "evt_given"
    dispatcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        dispatcher.emit("commission.distributed", DATA)


def test_unserialisable_data_is_refused_at_emit(dispatcher_factory: Any) -> None:
    dispatcher = dispatcher_factory()
    with pytest.raises(TypeError):
        dispatcher.emit("commission.distributed", {"amount": object()})
    assert dispatcher.events() == []


def test_secret_is_not_in_repr(dispatcher_factory: Any) -> None:
    dispatcher = dispatcher_factory()
    assert SECRET not in repr(dispatcher)


def test_bad_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        WebhookDispatcher(secret=SECRET, schedule=())
    with pytest.raises(ValueError, match="0 or more"):
        WebhookDispatcher(secret=SECRET, schedule=(0, -1))


def test_delivers_in_process_through_a_callers_session(dispatcher_factory: Any) -> None:
    """The embedded-sandbox case: the host hands over a session with its app mounted."""
    from flask_havn.sandbox.adapter import WSGIAdapter

    receiver = Receiver([502])  # not started: reached only through the adapter
    with requests.Session() as host_session:
        host_session.mount("http://host.invalid", WSGIAdapter(receiver.server.app))
        dispatcher = dispatcher_factory(url="http://host.invalid/hook", schedule=(0, 1))
        dispatcher.session = host_session
        assert dispatcher.session is host_session
        envelope = dispatcher.emit("commission.distributed", DATA)
        assert dispatcher.wait_idle(10)
    assert [(e["status_code"], e["delivered"]) for e in dispatcher.deliveries()] == [(502, False), (200, True)]
    assert [hit["headers"]["Webhook-Id"] for hit in receiver.hits] == [envelope["id"]] * 2


# -- nothing queued is dropped silently ---------------------------------------------


def test_flush_attempts_queued_retries_now(dispatcher_factory: Any, receiver_factory: Any) -> None:
    receiver = receiver_factory([500, 503])
    dispatcher = dispatcher_factory(url=receiver.url, schedule=(0, 3600, 3600), schedule_factor=1.0)
    envelope = dispatcher.emit("commission.distributed", DATA)
    assert dispatcher.flush(10) == 0  # the hour-long waits before attempts 2 and 3 are skipped
    assert [(e["attempt"], e["status_code"]) for e in dispatcher.deliveries()] == [(1, 500), (2, 503), (3, 200)]
    assert dispatcher.status(envelope["id"]) == "delivered" and dispatcher.pending() == []


def test_flush_with_a_dead_receiver_uses_every_attempt(dispatcher_factory: Any, receiver_factory: Any) -> None:
    receiver = receiver_factory([500] * 10)
    dispatcher = dispatcher_factory(url=receiver.url, schedule=(0, 3600, 3600), schedule_factor=1.0)
    envelope = dispatcher.emit("commission.distributed", DATA)
    assert dispatcher.flush(10) == 0
    assert dispatcher.status(envelope["id"]) == "failed" and len(receiver.hits) == 3


def test_flush_says_how_many_are_still_pending_when_time_runs_out(dispatcher_factory: Any) -> None:
    release = threading.Event()
    app = Flask("slow")

    @app.post("/hook")
    def hook() -> Any:
        release.wait(30)
        return "", 200

    with SandboxServer(app) as slow:
        dispatcher = dispatcher_factory(url=slow.url + "/hook")
        ids = {dispatcher.emit("commission.distributed", DATA)["id"] for _ in range(2)}
        assert dispatcher.flush(0.2) == 2
        assert set(dispatcher.pending()) == ids
        release.set()
        assert dispatcher.flush(10) == 0


def test_close_delivers_what_is_queued_first(dispatcher_factory: Any, receiver_factory: Any) -> None:
    receiver = receiver_factory([502])
    dispatcher = dispatcher_factory(url=receiver.url, schedule=(0, 3600), schedule_factor=1.0)
    envelope = dispatcher.emit("commission.distributed", DATA)
    dispatcher.close(drain_timeout=10)
    assert [hit["headers"]["Webhook-Id"] for hit in receiver.hits] == [envelope["id"]] * 2
    assert dispatcher.status(envelope["id"]) == "delivered"


def test_close_without_time_to_deliver_warns_how_many_are_lost(
        dispatcher_factory: Any, receiver_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    receiver = receiver_factory([])
    dispatcher = dispatcher_factory(url=receiver.url, schedule=(3600,), schedule_factor=1.0)
    envelope = dispatcher.emit("commission.distributed", DATA)  # its first attempt is an hour away
    with caplog.at_level("WARNING", logger="flask_havn.sandbox"):
        dispatcher.close()
    assert "1 HAVN sandbox webhook event(s) were not delivered before the sandbox closed and are lost" in caplog.text
    assert envelope["id"] in caplog.text and "HAVN_SANDBOX_DRAIN_TIMEOUT" in caplog.text
    assert receiver.hits == []

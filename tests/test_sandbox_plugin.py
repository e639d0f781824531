"""The pytest plugin (flask_havn/testing.py): registration, cheap import, and its two fixtures."""
from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any, Dict, List

import pytest
import requests
from flask import Flask
from flask import request as flask_request

import flask_havn.testing
from flask_havn.errors import HAVNConfigError, HAVNError
from flask_havn.sandbox.server import SandboxServer

SEEN_SERVERS: List[int] = []


def test_plugin_is_registered_by_entry_point(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.get_plugin("havn") is flask_havn.testing


def test_importing_the_plugin_starts_and_loads_nothing() -> None:
    code = (
        "import sys, threading, flask_havn.testing\n"
        "loaded = [m for m in ('flask_havn.sandbox.server', 'flask_havn.sandbox.app', 'sqlalchemy', 'requests')"
        " if m in sys.modules]\n"
        "print(threading.active_count(), loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1 []"


def seed_one(sandbox: SandboxServer) -> Any:
    response = requests.post(sandbox.url + "/_sandbox/seed", json={"associates": [{"name": "Only One"}]})
    assert response.status_code == 200
    return requests.get(sandbox.url + "/_sandbox/state").json()["counts"]["associates"]


@pytest.mark.parametrize("run", [1, 2])
def test_havn_sandbox_is_reset_before_each_test(havn_sandbox: SandboxServer, run: int) -> None:
    # Without the reset, the second run would see two associates.
    assert seed_one(havn_sandbox) == 1
    SEEN_SERVERS.append(id(havn_sandbox))


def test_the_server_is_shared_by_the_session(havn_sandbox: SandboxServer, havn_sandbox_server: SandboxServer) -> None:
    assert havn_sandbox is havn_sandbox_server
    assert set(SEEN_SERVERS) <= {id(havn_sandbox_server)}
    settings = havn_sandbox.state.settings
    assert settings.seed == flask_havn.testing.SANDBOX_TEST_CONFIG["HAVN_SANDBOX_SEED"]
    assert settings.delivery_schedule_factor == 0.001
    assert havn_sandbox.url.startswith("http://127.0.0.1:")


class FlakyReceiver:
    """A webhook receiver that answers 500 ``failures`` times per event, then 200; or hangs when ``hang``."""

    def __init__(self, failures: int = 0, hang: bool = False) -> None:
        self.seen: Dict[str, int] = {}
        self.lock = threading.Lock()
        self.release = threading.Event()
        app = Flask("flaky")

        @app.post("/hooks")
        def hooks() -> Any:
            if hang:
                self.release.wait(30)
            with self.lock:
                event_id = flask_request.headers["webhook-id"]
                self.seen[event_id] = self.seen.get(event_id, 0) + 1
                return ("", 500) if self.seen[event_id] <= failures else ("", 200)

        self.server = SandboxServer(app)


def test_wait_for_events_delivers_queued_retries_without_sleeping(havn_sandbox: SandboxServer) -> None:
    receiver = FlakyReceiver(failures=4)  # the 5th attempt comes after 5+300+1800+7200 s x 0.001 = 9.3 s
    with receiver.server:
        requests.put(havn_sandbox.url + "/_sandbox/webhook-url", json={"url": receiver.server.url + "/hooks"})
        emitted = [requests.post(havn_sandbox.url + "/_sandbox/events", json={"type": "commission.distributed"})
                   .json()["id"] for _ in range(3)]
        havn_sandbox.wait_for_events(timeout=5)
    assert receiver.seen == {event_id: 5 for event_id in emitted}
    assert set(havn_sandbox.state.dispatcher.statuses().values()) == {"delivered"}


def test_wait_for_events_raises_when_time_runs_out(havn_sandbox: SandboxServer) -> None:
    receiver = FlakyReceiver(hang=True)
    with receiver.server:
        requests.put(havn_sandbox.url + "/_sandbox/webhook-url", json={"url": receiver.server.url + "/hooks"})
        requests.post(havn_sandbox.url + "/_sandbox/events", json={"type": "commission.distributed"})
        with pytest.raises(HAVNError, match="1 HAVN sandbox event\\(s\\) were still being delivered after 0.2 s"):
            flask_havn.testing.wait_for_events(havn_sandbox, timeout=0.2)
        receiver.release.set()
        flask_havn.testing.wait_for_events(havn_sandbox)


def test_wait_for_events_of_an_embedded_sandbox(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        owner = host.havn.client.users.sync(email="owner@example.com", name="Ada Owner", is_owner=True)
        host.havn.client.transactions.send(amount=10000, referral_code=owner.referral_code,
                                           customer_email="c@example.com", payment_gateway_transaction_id="pi_w")
    flask_havn.testing.wait_for_events(host.app)
    with host.app.app_context():
        events = host.db.session.execute(host.db.select(host.havn.models.WebhookEvent)).scalars().all()
        assert [(e.type, e.status) for e in events] == [("commission.distributed", "processed")]
    client_only = make_host({"HAVN_SANDBOX": False, "HAVN_API_KEY": "k", "HAVN_WEBHOOK_SECRET": "s"}, with_db=False)
    with pytest.raises(HAVNConfigError, match="embeds no HAVN sandbox"):
        flask_havn.testing.wait_for_events(client_only.app)

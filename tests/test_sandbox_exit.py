"""Events the sandbox queued leave before the process ends (sandbox/events.py flush, state.py close at exit).

Each test runs a real, short-lived process: the bug was a daemon delivery thread
that died with the process, silently dropping queued events.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from flask import Flask, request

from _projects_helpers import record_many, synced_chain
from flask_havn.sandbox.server import SandboxServer

TESTS = Path(__file__).parent

EMIT_AND_EXIT = """
import os, sys
from flask_havn.sandbox.app import create_app
from flask_havn.sandbox.settings import environ_config
from flask_havn.sandbox.state import get_state

state = get_state(create_app({**environ_config(os.environ), "HAVN_SANDBOX_WEBHOOK_URL": sys.argv[1]}))
for n in range(int(sys.argv[2])):
    state.dispatcher.emit("commission.distributed", {"n": n})
print("emitted", flush=True)
"""


class Receiver:
    """Answers 500 to the first attempt of each event (its retry is 5 s away), 200 to the next."""

    def __init__(self, block: bool = False) -> None:
        self.attempts: Counter = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()
        if not block:
            self.release.set()
        app = Flask("exit_receiver")

        @app.post("/hook")
        def hook() -> Any:
            self.release.wait(60)
            with self.lock:
                self.attempts[request.headers["webhook-id"]] += 1
                first = self.attempts[request.headers["webhook-id"]] == 1
            return ("", 500) if first else ("", 200)

        self.server = SandboxServer(app)


@pytest.fixture
def receiver() -> Iterator[Any]:
    made = []

    def make(block: bool = False) -> Receiver:
        made.append(Receiver(block))
        made[-1].server.start()
        return made[-1]

    yield make
    for one in made:
        one.release.set()
        one.server.stop()


def _env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAVN_", "FLASK_"))}
    env.update(extra)
    return env


def test_queued_events_and_their_retries_go_out_before_the_process_ends(receiver: Any) -> None:
    hook = receiver()
    done = subprocess.run([sys.executable, "-c", EMIT_AND_EXIT, hook.server.url + "/hook", "30"], env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(hook.attempts) == 30  # every event, though each first attempt failed
    assert set(hook.attempts.values()) == {2}
    assert "not delivered" not in done.stderr


def test_a_drain_that_runs_out_of_time_says_how_many_were_lost(receiver: Any) -> None:
    hook = receiver(block=True)  # answers nothing until the process is gone
    done = subprocess.run([sys.executable, "-c", EMIT_AND_EXIT, hook.server.url + "/hook", "3"],
                          env=_env(HAVN_SANDBOX_DRAIN_TIMEOUT="0.2"), capture_output=True, text=True, timeout=120)
    hook.release.set()
    assert done.returncode == 0, done.stderr
    assert "3 HAVN sandbox webhook event(s) were not delivered before the sandbox closed and are lost" in done.stderr
    assert "HAVN_SANDBOX_DRAIN_TIMEOUT" in done.stderr


def test_flask_havn_deliver_once_stores_every_commission_event(make_host: Any, tmp_path: Path) -> None:
    """The report: `flask havn deliver --once --concurrency 4` stored 14-21 of 30 events and said nothing."""
    database, sandbox_file = f"sqlite:///{tmp_path}/shop.sqlite", f"sqlite:///{tmp_path}/havn-sandbox.sqlite"
    host = make_host({"SQLALCHEMY_DATABASE_URI": database, "HAVN_SANDBOX_DATABASE_URI": sandbox_file,
                      "HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)  # B's payments pay A: one commission.distributed event each
    record_many(host, b_id, 30)
    flask = str(Path(sys.executable).with_name("flask"))
    done = subprocess.run([flask, "--app", "_deliver_host_app", "havn", "deliver", "--once", "--concurrency", "4"],
                          cwd=TESTS, capture_output=True, text=True, timeout=300,
                          env=_env(HOST_DATABASE_URI=database, HAVN_SANDBOX_DATABASE_URI=sandbox_file))
    assert done.returncode == 0, done.stdout + done.stderr
    with host.app.app_context():
        Payment, WebhookEvent = host.havn.models.Payment, host.havn.models.WebhookEvent
        states = Counter(s for (s,) in host.db.session.query(Payment.delivery_state))
        events = host.db.session.query(WebhookEvent.type, WebhookEvent.status).all()
    assert states == {"sent": 30}
    assert Counter(events) == {("commission.distributed", "processed"): 30}

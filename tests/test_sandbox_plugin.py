"""The pytest plugin (flask_havn/testing.py): registration, cheap import, and its two fixtures."""
from __future__ import annotations

import subprocess
import sys
from typing import Any, List

import pytest
import requests

import flask_havn.testing
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

"""SandboxServer (sandbox/server.py), the CLI options and the pytest plugin's fixtures."""
from __future__ import annotations

from typing import Any, List

import pytest
import requests
from flask import Flask

from flask_havn.config import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET
from flask_havn.sandbox.__main__ import parse_args
from flask_havn.sandbox.server import SandboxServer, SandboxServerError, banner
from flask_havn.sandbox.settings import SandboxSettings


def crashing_app() -> Flask:
    app = Flask("crashy")

    @app.get("/ok")
    def ok() -> Any:
        return {"ok": True}

    @app.get("/boom")
    def boom() -> Any:
        raise ZeroDivisionError("sandbox bug")

    return app


def raw_wsgi_crash(environ: Any, start_response: Any) -> List[bytes]:
    raise KeyError("raw wsgi bug")


def test_serves_on_an_ephemeral_loopback_port() -> None:
    server = SandboxServer(crashing_app())
    with pytest.raises(RuntimeError, match="start"):
        server.url
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(":0")
        assert requests.get(server.url + "/ok", timeout=5).json() == {"ok": True}
        assert "127.0.0.1" in repr(server)
    assert "stopped" in repr(server)


def test_two_servers_get_different_ports() -> None:
    with SandboxServer(crashing_app()) as one, SandboxServer(crashing_app()) as two:
        assert one.url != two.url


def test_a_crash_inside_a_flask_app_surfaces_on_stop() -> None:
    server = SandboxServer(crashing_app()).start()
    response = requests.get(server.url + "/boom", timeout=5)
    assert response.status_code == 500
    assert len(server.errors) == 1 and isinstance(server.errors[0], ZeroDivisionError)
    with pytest.raises(SandboxServerError, match="ZeroDivisionError: sandbox bug") as caught:
        server.stop()
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    assert server.errors == []


def test_a_crash_in_a_raw_wsgi_app_is_recorded_too() -> None:
    server = SandboxServer(raw_wsgi_crash).start()
    assert requests.get(server.url + "/", timeout=5).status_code == 500
    with pytest.raises(SandboxServerError, match="KeyError"):
        server.raise_errors()
    server.raise_errors()  # already reported: nothing left
    server.stop()


def test_stop_can_keep_errors_quiet() -> None:
    server = SandboxServer(crashing_app()).start()
    requests.get(server.url + "/boom", timeout=5)
    server.stop(raise_errors=False)
    assert len(server.errors) == 1


def test_constructor_misuse_is_explained() -> None:
    with pytest.raises(ValueError, match="either app or config"):
        SandboxServer(crashing_app(), config={})
    server = SandboxServer(crashing_app())
    assert server.state is None
    with pytest.raises(RuntimeError, match="not a HAVN sandbox"):
        server.reset()
    with server:
        with pytest.raises(RuntimeError, match="already running"):
            server.start()


def test_banner_shows_dev_credentials_but_never_a_users_secret() -> None:
    dev = banner("http://127.0.0.1:8765", SandboxSettings())
    assert SANDBOX_API_KEY in dev and SANDBOX_WEBHOOK_SECRET in dev
    assert "HAVN_BASE_URL=http://127.0.0.1:8765" in dev
    own = banner("http://127.0.0.1:8765", SandboxSettings(
        api_key="live-key-123", webhook_secret="live-secret-456",
        database_uri="postgresql://havn:dbpass@db/havn", webhook_url="https://u:hookpass@example.com/h"))
    for secret in ("live-key-123", "live-secret-456", "dbpass", "hookpass"):
        assert secret not in own
    assert "(your HAVN_API_KEY)" in own and "postgresql://havn:***@db/havn" in own
    for shown in (repr(SandboxSettings(database_uri="postgresql://havn:dbpass@db/havn")),
                  repr(SandboxSettings(webhook_url="https://u:hookpass@example.com/h"))):
        assert "dbpass" not in shown and "hookpass" not in shown and "***" in shown


def test_banner_shows_credentials_made_up_for_the_run_and_the_public_url() -> None:
    made_up = SandboxSettings(api_key="sandbox-key-abc", webhook_secret="sandbox-secret-def")
    shown = banner("http://127.0.0.1:8765", made_up, public_url="http://havn.test:8765", generated=True)
    assert "export HAVN_API_KEY=sandbox-key-abc" in shown and "export HAVN_WEBHOOK_SECRET=sandbox-secret-def" in shown
    assert "export HAVN_BASE_URL=http://havn.test:8765" in shown and "on http://127.0.0.1:8765" in shown


def test_cli_options_become_config() -> None:
    host, port, config = parse_args(["--host", "0.0.0.0", "--port", "9000", "--database", "sqlite:////tmp/h.db",
                                     "--webhook-url", "http://127.0.0.1:5000/havn/webhooks", "--seed", "7"])
    assert (host, port) == ("0.0.0.0", 9000)
    assert config == {"HAVN_SANDBOX_DATABASE_URI": "sqlite:////tmp/h.db",
                      "HAVN_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:5000/havn/webhooks",
                      "HAVN_SANDBOX_SEED": 7}
    assert parse_args([]) == ("127.0.0.1", 8765, {})
    _, _, hosts = parse_args(["--public-url", "http://havn.test:1", "--allowed-host", "a.test",
                              "--allowed-host", "b.test"])
    assert hosts == {"HAVN_SANDBOX_PUBLIC_URL": "http://havn.test:1", "HAVN_SANDBOX_ALLOWED_HOSTS": ["a.test", "b.test"]}
    with pytest.raises(SystemExit):
        parse_args(["--port", "70000"])
    with pytest.raises(SystemExit):
        parse_args(["--seed", "abc"])


def test_a_busy_port_is_an_error_not_an_exit() -> None:
    with SandboxServer(crashing_app()) as busy:
        port = int(busy.url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1"):
            SandboxServer(crashing_app(), port=port).start()

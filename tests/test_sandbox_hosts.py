"""The standalone sandbox answers loopback or configured Host names only (DNS rebinding), and builds
its links from its public URL, never from the request's Host header (sandbox/hosts.py)."""
from __future__ import annotations

import json
from typing import Any, Dict, Iterator, Optional

import pytest
import requests

from flask_havn.config import SANDBOX_API_KEY, SANDBOX_BASE_URL, SANDBOX_WEBHOOK_SECRET
from flask_havn.errors import HAVNConfigError
from flask_havn.sandbox.adapter import WSGIAdapter
from flask_havn.sandbox.app import create_app
from flask_havn.sandbox.hosts import hostname, is_loopback
from flask_havn.sandbox.server import SandboxServer
from flask_havn.sandbox.settings import SandboxSettings
from flask_havn.signing import sign_payload

API = "/api/v1/webhook"
SEED = {"associates": [{"name": "Ada Lee", "email": "ada@example.com", "referral_code": "HAVN-AL-001"}]}


def signed(payload: Dict[str, Any], host: Optional[str] = None) -> Dict[str, str]:
    headers = {"Content-Type": "application/json", "X-API-Key": SANDBOX_API_KEY,
               "X-Signature": sign_payload(SANDBOX_WEBHOOK_SECRET, payload)}
    if host is not None:
        headers["Host"] = host
    return headers


@pytest.fixture
def served() -> Iterator[Any]:
    """Own servers (the session's havn_sandbox has no custom settings)."""
    servers = []

    def serve(config: Optional[Dict[str, Any]] = None) -> SandboxServer:
        server = SandboxServer(config=config or {}).start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.stop()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}",
                                  "havn-sandbox.example", "[::2]:{port}", "", "bad host name"])
def test_a_foreign_host_is_refused_before_anything_runs(havn_sandbox: SandboxServer, host: str) -> None:
    port = havn_sandbox.url.rsplit(":", 1)[1]
    named = host.format(port=port)
    attempts = [
        ("POST", "/_sandbox/seed", json.dumps(SEED), {"Content-Type": "application/json", "Host": named}),
        ("POST", API + "/user-sync", json.dumps({"email": "x@example.com", "name": "X"}),
         signed({"email": "x@example.com", "name": "X"}, named)),
        ("GET", "/_sandbox/state", None, {"Host": named}),
    ]
    for method, path, body, headers in attempts:
        response = requests.request(method, havn_sandbox.url + path, data=body, headers=headers, timeout=10)
        assert response.status_code == 421, (path, response.text)
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"] == "MisdirectedRequest"
        assert "HAVN_SANDBOX_ALLOWED_HOSTS" in response.json()["message"]
    assert havn_sandbox.state.backend.dump()["counts"]["associates"] == 0
    assert havn_sandbox.state.backend.dump()["counts"]["users"] == 0


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "LOCALHOST:{port}", "127.0.0.1:{port}",
                                  "127.8.9.10", "[::1]:{port}", "[::1]"])
def test_loopback_names_with_any_port_are_answered(havn_sandbox: SandboxServer, host: str) -> None:
    port = havn_sandbox.url.rsplit(":", 1)[1]
    response = requests.post(havn_sandbox.url + "/_sandbox/seed", json=SEED,
                             headers={"Host": host.format(port=port)}, timeout=10)
    assert response.status_code == 200
    assert havn_sandbox.state.backend.dump()["counts"]["associates"] == 1


def test_allowed_hosts_and_the_public_urls_host_are_answered(served: Any) -> None:
    server = served({"HAVN_SANDBOX_ALLOWED_HOSTS": "havn-sandbox, Sandbox.Test:9000",
                     "HAVN_SANDBOX_PUBLIC_URL": "https://havn.example.com/"})
    for host in ("havn-sandbox", "havn-sandbox:8765", "sandbox.test", "havn.example.com", "havn.example.com:443"):
        response = requests.get(server.url + "/_sandbox/state", headers={"Host": host}, timeout=10)
        assert response.status_code == 200, host
    refused = requests.get(server.url + "/_sandbox/state", headers={"Host": "example.com"}, timeout=10)
    assert refused.status_code == 421


def test_login_links_come_from_the_server_url_not_the_host_header(havn_sandbox: SandboxServer) -> None:
    assert requests.post(havn_sandbox.url + "/_sandbox/seed", json=SEED, timeout=10).status_code == 200
    payload = {"email": "ada@example.com"}
    port = havn_sandbox.url.rsplit(":", 1)[1]
    answer = requests.post(havn_sandbox.url + API + "/login", data=json.dumps(payload),
                           headers=signed(payload, f"localhost:{port}"), timeout=10)
    assert answer.status_code == 200
    redirect = answer.json()["data"]["redirect_url"]
    assert redirect.startswith(havn_sandbox.url + "/login?token=")
    assert havn_sandbox.state.public_url == havn_sandbox.url


def test_login_links_use_the_configured_public_url(served: Any) -> None:
    server = served({"HAVN_SANDBOX_PUBLIC_URL": "http://havn.test:9000/"})
    assert requests.post(server.url + "/_sandbox/seed", json=SEED, timeout=10).status_code == 200
    payload = {"email": "ada@example.com"}
    answer = requests.post(server.url + API + "/login", data=json.dumps(payload), headers=signed(payload),
                           timeout=10)
    assert answer.json()["data"]["redirect_url"].startswith("http://havn.test:9000/login?token=")
    # The link works when the name resolves to the sandbox (here: sent to the same socket).
    token_path = answer.json()["data"]["redirect_url"][len("http://havn.test:9000"):]
    page = requests.get(server.url + token_path, headers={"Host": "havn.test:9000"}, timeout=10)
    assert page.status_code == 200 and page.json()["user"]["email"] == "ada@example.com"


@pytest.mark.parametrize("config", [{}, {"HAVN_SANDBOX_PUBLIC_URL": "http://havn.test:8765"}])
def test_the_in_process_sandbox_answers_on_its_invalid_name(config: Dict[str, Any]) -> None:
    app = create_app(config)
    try:
        with requests.Session() as session:
            session.mount(SANDBOX_BASE_URL, WSGIAdapter(app))
            assert session.post(SANDBOX_BASE_URL + "/_sandbox/seed", json=SEED).status_code == 200
            payload = {"email": "ada@example.com"}
            answer = session.post(SANDBOX_BASE_URL + API + "/login", data=json.dumps(payload),
                                  headers=signed(payload))
            links = config.get("HAVN_SANDBOX_PUBLIC_URL", SANDBOX_BASE_URL)
            assert answer.json()["data"]["redirect_url"].startswith(links + "/login?token=")
            session.mount("http://elsewhere.invalid", WSGIAdapter(app))
            assert session.get("http://elsewhere.invalid/_sandbox/state").status_code == 421
    finally:
        app.extensions["havn_sandbox"].close()


def test_host_parsing() -> None:
    assert [hostname(h) for h in ("Example.COM:80", "[::1]:5", "localhost.", "a b", "")] == [
        "example.com", "::1", "localhost", None, None]
    assert [is_loopback(n) for n in ("localhost", "127.0.0.1", "127.255.0.9", "::1", "10.0.0.1", "localhost.x")] == [
        True, True, True, True, False, False]


@pytest.mark.parametrize("key, value, says", [
    ("HAVN_SANDBOX_PUBLIC_URL", "ftp://x", "absolute http(s) URL"),
    ("HAVN_SANDBOX_PUBLIC_URL", "/relative", "absolute http(s) URL"),
    ("HAVN_SANDBOX_ALLOWED_HOSTS", "*", "no wildcards"),
    ("HAVN_SANDBOX_ALLOWED_HOSTS", [5], "not a host name"),
])
def test_bad_host_settings_name_the_key(key: str, value: Any, says: str) -> None:
    with pytest.raises(HAVNConfigError) as info:
        SandboxSettings.from_mapping({key: value})
    assert key in info.value.message and says in info.value.message


def test_host_settings_read_from_strings() -> None:
    settings = SandboxSettings.from_mapping({"HAVN_SANDBOX_ALLOWED_HOSTS": "A.test, [::2]:80, ,b.test:1",
                                             "HAVN_SANDBOX_PUBLIC_URL": "http://a.test:8765/"})
    assert settings.allowed_hosts == ("a.test", "::2", "b.test")
    assert settings.public_url == "http://a.test:8765"

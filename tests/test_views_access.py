"""The blueprint's access rule (denied by default; @havn.authorize) and its JSON-only errors."""
from __future__ import annotations

from typing import Any, List

import pytest
from flask import request

from _projects_helpers import quiet

ROUTES = [
    ("POST", "/havn/projects"), ("GET", "/havn/projects"), ("GET", "/havn/projects/1"),
    ("POST", "/havn/projects/1/sync"), ("POST", "/havn/projects/1/members"), ("POST", "/havn/payments"),
    ("GET", "/havn/payments/1"), ("POST", "/havn/payments/1/complete"), ("POST", "/havn/payments/1/retry"),
]


@pytest.fixture
def make_host(make_host: Any) -> Any:
    return quiet(make_host)


def _count(host: Any) -> int:
    with host.app.app_context():
        models = host.havn.models
        return models.Project.query.count() + models.Payment.query.count()


@pytest.mark.parametrize("method, path", ROUTES)
def test_every_route_is_closed_until_authorize_is_registered(make_host: Any, method: str, path: str) -> None:
    host = make_host()
    response = host.app.test_client().open(path, method=method, json={"project_name": "Sneaky"})
    assert response.status_code == 403
    assert response.is_json
    body = response.get_json()
    assert body["error"] == "forbidden"
    assert "@havn.authorize" in body["message"]
    assert _count(host) == 0


def test_authorize_callback_decides_per_request(make_host: Any) -> None:
    host = make_host()
    calls: List[str] = []

    @host.havn.authorize
    def admins_only() -> bool:
        calls.append(request.path)
        return request.headers.get("X-Role") == "admin"

    client = host.app.test_client()
    denied = client.post("/havn/projects", json={"project_name": "Nope"})
    assert denied.status_code == 403
    assert denied.get_json()["message"] == "Your @havn.authorize callback did not allow this request."
    assert _count(host) == 0
    allowed = client.post("/havn/projects", json={"project_name": "Yes"}, headers={"X-Role": "admin"})
    assert allowed.status_code == 201
    assert calls == ["/havn/projects", "/havn/projects"]


def test_webhook_endpoint_is_not_behind_authorize(make_host: Any) -> None:
    host = make_host()
    response = host.app.test_client().post("/havn/webhooks", data=b"{}", content_type="application/json")
    assert response.status_code in (400, 401)  # its own signature check, not our 403
    assert response.is_json


def test_unknown_paths_and_methods_answer_json(make_host: Any) -> None:
    host = make_host()
    host.havn.authorize(lambda: True)
    client = host.app.test_client()
    missing = client.get("/havn/nothing/here")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    not_an_id = client.get("/havn/projects/abc")
    assert not_an_id.status_code == 404 and not_an_id.is_json
    huge = client.get("/havn/payments/99999999999999999999")
    assert huge.status_code == 404 and huge.is_json
    wrong = client.delete("/havn/projects/1")
    assert wrong.status_code == 405 and wrong.is_json
    assert wrong.headers["Allow"] == "GET"
    wrong = client.put("/havn/payments")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET, POST"
    # The host's own pages keep their own 404s.
    assert not host.app.test_client().get("/elsewhere").is_json


def test_a_callback_that_raises_is_not_an_open_door(make_host: Any) -> None:
    host = make_host()
    host.app.config["PROPAGATE_EXCEPTIONS"] = False

    @host.havn.authorize
    def broken() -> bool:
        raise RuntimeError("session store down")

    response = host.app.test_client().post("/havn/projects", json={"project_name": "X"})
    assert response.status_code == 500
    assert response.is_json
    assert _count(host) == 0


def test_routes_follow_the_url_prefix(make_host: Any) -> None:
    host = make_host({"HAVN_URL_PREFIX": "/api/referrals"})
    host.havn.authorize(lambda: True)
    client = host.app.test_client()
    assert client.post("/api/referrals/projects", json={"project_name": "P"}).status_code == 201
    assert client.get("/havn/projects").status_code == 404


def test_no_routes_without_a_database(make_host: Any) -> None:
    host = make_host(with_db=False)
    assert host.app.test_client().get("/havn/projects").status_code == 404
    assert not any(rule.endpoint.startswith("havn.") for rule in host.app.url_map.iter_rules())

"""Project routes: create, list, show, sync the owner, sync members (in-process sandbox)."""
from __future__ import annotations

from typing import Any

import pytest

from _projects_helpers import allow, dump, quiet, sandbox_of


@pytest.fixture
def make_host(make_host: Any) -> Any:
    return quiet(make_host)


@pytest.fixture
def host(make_host: Any) -> Any:
    made = make_host({"HAVN_BULK_MAX_SIZE": 50})
    allow(made)
    return made


def _rows(host: Any) -> int:
    with host.app.app_context():
        models = host.havn.models
        return models.Project.query.count() + models.ProjectMember.query.count()


def test_create_list_and_show(host: Any) -> None:
    client = host.app.test_client()
    created = client.post("/havn/projects", json={"project_name": "Alpha", "upline_referral_code": None})
    assert created.status_code == 201
    body = created.get_json()
    assert (body["name"], body["sync_state"], body["referral_code"], body["members"]) == \
        ("Alpha", "pending", None, [])
    second = client.post("/havn/projects", json={"project_name": "Beta", "upline_referral_code": "havn-aa-001"})
    assert second.get_json()["upline_referral_code"] == "HAVN-AA-001"

    listing = client.get("/havn/projects").get_json()
    assert [p["name"] for p in listing["projects"]] == ["Alpha", "Beta"] and listing["total"] == 2
    page = client.get("/havn/projects?limit=1&offset=1").get_json()
    assert [p["name"] for p in page["projects"]] == ["Beta"]
    assert client.get("/havn/projects?limit=-1").status_code == 400
    assert client.get("/havn/projects?limit=x").status_code == 400

    shown = client.get(f"/havn/projects/{body['id']}")
    assert shown.status_code == 200 and shown.get_json()["name"] == "Alpha"
    missing = client.get("/havn/projects/999")
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "not_found", "message": "no project with id 999; list them with "
                                  "GET /havn/projects"}


@pytest.mark.parametrize("body, fields", [
    ({}, {"project_name"}),
    ({"project_name": ""}, {"project_name"}),
    ({"project_name": 5}, {"project_name"}),
    ({"project_name": "P", "upline_referral_code": "X"}, {"upline_referral_code"}),
    ({"project_name": "P", "upline_referral_code": ""}, {"upline_referral_code"}),
    ({"project_name": "P", "owner": "me"}, {"owner"}),
    ({"project_name": "", "upline_referral_code": "X" * 60}, {"project_name", "upline_referral_code"}),
])
def test_bad_project_bodies_are_400_and_write_nothing(host: Any, body: dict, fields: set) -> None:
    response = host.app.test_client().post("/havn/projects", json=body)
    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"] == "validation_error"
    assert set(answer["errors"]) == fields
    assert all(answer["errors"].values())
    assert _rows(host) == 0


@pytest.mark.parametrize("raw, content_type", [
    (b"not json", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"text"', "application/json"),
    (b'{"project_name": "P"}', "text/plain"),
    (b"", "application/json"),
    (b'{"project_name": "\xff"}', "application/json"),
])
def test_non_object_bodies_are_400(host: Any, raw: bytes, content_type: str) -> None:
    response = host.app.test_client().post("/havn/projects", data=raw, content_type=content_type)
    assert response.status_code == 400
    (message,) = response.get_json()["errors"].values()
    assert set(response.get_json()["errors"]) == {"body"}
    assert message.endswith("send a JSON object with Content-Type: application/json")
    assert _rows(host) == 0


def test_sync_returns_the_referral_code_and_downline(host: Any) -> None:
    client = host.app.test_client()
    a = client.post("/havn/projects", json={"project_name": "Alpha"}).get_json()
    synced = client.post(f"/havn/projects/{a['id']}/sync", json={"email": "alice@alpha.example", "name": "Alice"})
    assert synced.status_code == 200
    code = synced.get_json()["referral_code"]
    assert code and synced.get_json()["project"]["sync_state"] == "synced"
    b = client.post("/havn/projects", json={"project_name": "Beta", "upline_referral_code": code}).get_json()
    client.post(f"/havn/projects/{b['id']}/sync", json={"email": "bob@beta.example", "name": "Bob"})
    shown = client.get(f"/havn/projects/{a['id']}").get_json()
    assert [(p["id"], p["name"]) for p in shown["downline_projects"]] == [(b["id"], "Beta")]
    assert [(m["email"], m["role"]) for m in shown["members"]] == [("alice@alpha.example", "owner")]


@pytest.mark.parametrize("body, fields", [
    ({}, {"email", "name"}),
    ({"email": "x", "name": "N"}, {"email"}),
    ({"email": "a@a.example", "name": "  "}, {"name"}),
    ({"email": "a@a.example", "name": "N", "is_owner": True}, {"is_owner"}),
])
def test_bad_sync_bodies_are_400_and_write_nothing(host: Any, body: dict, fields: set) -> None:
    client = host.app.test_client()
    project = client.post("/havn/projects", json={"project_name": "Alpha"}).get_json()
    response = client.post(f"/havn/projects/{project['id']}/sync", json=body)
    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == fields
    assert _rows(host) == 1
    assert dump(sandbox_of(host))["counts"]["users"] == 0


def test_sync_of_an_unknown_project_is_404(host: Any) -> None:
    response = host.app.test_client().post("/havn/projects/42/sync", json={"email": "a@a.example", "name": "A"})
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert dump(sandbox_of(host))["counts"]["users"] == 0


def test_unknown_upline_is_422_and_the_project_is_failed(host: Any) -> None:
    client = host.app.test_client()
    project = client.post("/havn/projects", json={"project_name": "Orphan",
                                                  "upline_referral_code": "HAVN-ZZ-999"}).get_json()
    response = client.post(f"/havn/projects/{project['id']}/sync", json={"email": "o@o.example", "name": "Olly"})
    assert response.status_code == 422
    assert response.get_json()["error"] == "havn_not_found" and "HAVN-ZZ-999" in response.get_json()["message"]
    shown = client.get(f"/havn/projects/{project['id']}").get_json()
    assert shown["sync_state"] == "failed" and "HAVN-ZZ-999" in shown["last_error"]


def test_havn_down_is_a_json_5xx(make_host: Any) -> None:
    host = make_host({"HAVN_MAX_RETRIES": 0})
    allow(host)
    client = host.app.test_client()
    project = client.post("/havn/projects", json={"project_name": "P"}).get_json()
    sandbox_of(host).faults.configure({"seed": 1, "rates": {"503": 1.0}})
    response = client.post(f"/havn/projects/{project['id']}/sync", json={"email": "o@o.example", "name": "O"})
    assert response.status_code == 502 and response.get_json()["error"] == "havn_error"
    sandbox_of(host).faults.configure({"seed": 1, "burst_429": 1})
    response = client.post(f"/havn/projects/{project['id']}/sync", json={"email": "o@o.example", "name": "O"})
    assert response.status_code == 503 and response.get_json()["error"] == "havn_rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


def test_members_summary_and_errors(host: Any) -> None:
    client = host.app.test_client()
    project = client.post("/havn/projects", json={"project_name": "Team"}).get_json()
    client.post(f"/havn/projects/{project['id']}/sync", json={"email": "lead@team.example", "name": "Lea"})
    users = [{"email": f"m{n}@team.example", "name": f"M {n}"} for n in range(120)]
    response = client.post(f"/havn/projects/{project['id']}/members", json={"users": users})
    assert response.status_code == 200
    body = response.get_json()
    assert body["summary"] == {"total": 120, "success": 120, "errors": 0}
    assert body["errors"] == []
    assert len(body["members"]) == 121
    assert {m["sync_state"] for m in body["members"]} == {"synced"}


@pytest.mark.parametrize("body, field", [
    ({}, "users"),
    ({"users": "nope"}, "users"),
    ({"users": []}, "users"),
    ({"users": [{"email": "a@t.example", "name": "A"}, {"email": "bad", "name": "B"}]}, "users[1].email"),
    ({"users": [{"email": "a@t.example"}]}, "users[0].name"),
    ({"users": [{"email": "a@t.example", "name": "A"}], "extra": 1}, "extra"),
])
def test_bad_member_lists_are_400_and_write_nothing(host: Any, body: dict, field: str) -> None:
    client = host.app.test_client()
    project = client.post("/havn/projects", json={"project_name": "Team"}).get_json()
    client.post(f"/havn/projects/{project['id']}/sync", json={"email": "lead@team.example", "name": "Lea"})
    response = client.post(f"/havn/projects/{project['id']}/members", json=body)
    assert response.status_code == 400
    assert field in response.get_json()["errors"]
    assert _rows(host) == 2  # the project and its owner
    assert dump(sandbox_of(host))["counts"]["users"] == 1


def test_members_of_an_unsynced_project_are_400(host: Any) -> None:
    client = host.app.test_client()
    project = client.post("/havn/projects", json={"project_name": "Team"}).get_json()
    response = client.post(f"/havn/projects/{project['id']}/members",
                           json={"users": [{"email": "a@t.example", "name": "A"}]})
    assert response.status_code == 400 and "project_id" in response.get_json()["errors"]
    assert client.post("/havn/projects/77/members", json={"users": []}).status_code == 404

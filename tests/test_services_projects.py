"""Services for projects: create, sync the owner, sync members in batches (in-process sandbox)."""
from __future__ import annotations

import json
from typing import Any, List

import pytest
from werkzeug.wrappers import Request, Response

from flask_havn import signals
from flask_havn.errors import HAVNConfigError, HAVNConflictError, HAVNNotFoundError, HAVNValidationError

from _projects_helpers import dump, http_config, quiet, sandbox_of

@pytest.fixture
def make_host(make_host: Any) -> Any:
    """Hosts whose embedded sandbox posts no events back (see _projects_helpers.quiet)."""
    return quiet(make_host)



def _count(host: Any, model: str) -> int:
    with host.app.app_context():
        return getattr(host.havn.models, model).query.count()


def test_create_project_stores_upper_cased_upline(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        project = host.havn.create_project("  Beta Shop ", upline_referral_code=" havn-aa-001 ")
        assert project.id is not None
        assert project.name == "Beta Shop"
        assert project.upline_referral_code == "HAVN-AA-001"
        assert project.referral_code is None
        assert project.sync_state == "pending"


@pytest.mark.parametrize("name, upline, fields", [
    ("", None, {"name"}),
    ("x" * 201, None, {"name"}),
    (None, None, {"name"}),
    ("Shop", "AB", {"upline_referral_code"}),
    ("Shop", "   ", {"upline_referral_code"}),
    ("Shop", 12345, {"upline_referral_code"}),
    ("", "X" * 51, {"name", "upline_referral_code"}),
])
def test_create_project_refuses_bad_input_and_writes_nothing(make_host: Any, name: Any, upline: Any,
                                                             fields: set) -> None:
    host = make_host()
    with host.app.app_context():
        with pytest.raises(HAVNValidationError) as info:
            host.havn.create_project(name, upline_referral_code=upline)
    assert set(info.value.errors) == fields
    assert info.value.field in fields
    assert _count(host, "Project") == 0


def test_sync_owner_stores_the_code_and_is_idempotent(make_host: Any) -> None:
    host = make_host()
    seen: List[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append((sender, kwargs["project"].referral_code, kwargs["result"].referral_code))

    signals.project_synced.connect(receiver)
    try:
        with host.app.app_context():
            project = host.havn.create_project("Alpha")
            project = host.havn.sync_owner(project.id, "Alice@Alpha.example", "Alice Alpha")
            code = project.referral_code
            assert code and code.startswith("HAVN-")
            assert project.sync_state == "synced" and project.last_error is None
            assert project.havn_associate_id
            owner = project.members[0]
            assert (owner.role, owner.email, owner.email_key, owner.sync_state) == \
                ("owner", "Alice@Alpha.example", "alice@alpha.example", "synced")
            assert owner.havn_user_id

            again = host.havn.sync_owner(project, "alice@alpha.example", "Alice A.")
            assert again.referral_code == code
            assert len(again.members) == 1 and again.members[0].name == "Alice A."
    finally:
        signals.project_synced.disconnect(receiver)
    assert [(s is host.app, c1, c2) for s, c1, c2 in seen] == [(True, code, code), (True, code, code)]
    state = dump(sandbox_of(host))
    assert state["counts"]["associates"] == 1
    owner_row = state["associates"][0]
    assert owner_row["referral_code"] == code
    assert owner_row.get("role") == "owner"


def test_owner_is_synced_under_the_projects_upline(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        a = host.havn.sync_owner(host.havn.create_project("A"), "a@a.example", "Ann A")
        b = host.havn.sync_owner(host.havn.create_project("B", a.referral_code), "b@b.example", "Ben B")
        assert b.referral_code != a.referral_code
        assert [p.id for p in host.havn.downline_projects(a)] == [b.id]
        assert host.havn.downline_projects(b) == []
    associates = {row["referral_code"]: row for row in dump(sandbox_of(host))["associates"]}
    assert associates[b.referral_code]["upline_id"] == associates[a.referral_code]["associate_id"]
    assert associates[a.referral_code]["upline_id"] is None


def test_unknown_upline_leaves_the_project_failed_with_havns_message(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        project = host.havn.create_project("Orphan", upline_referral_code="HAVN-ZZ-999")
        with pytest.raises(HAVNNotFoundError) as info:
            host.havn.sync_owner(project, "o@orphan.example", "Olly Orphan")
        project = host.havn.get_project(project.id)
        assert project.sync_state == "failed"
        assert "HAVN-ZZ-999" in project.last_error
        assert project.last_error == info.value.message
        assert project.referral_code is None
        assert project.members[0].sync_state == "failed"
    assert dump(sandbox_of(host))["counts"]["users"] == 0


@pytest.mark.parametrize("email, name, fields", [
    ("not-an-email", "Ann", {"email"}),
    ("a@a.example", "", {"name"}),
    (None, None, {"email", "name"}),
    ("a@a.example", "n" * 201, {"name"}),
])
def test_sync_owner_refuses_bad_input_without_calling_havn(make_host: Any, email: Any, name: Any,
                                                           fields: set) -> None:
    host = make_host()
    with host.app.app_context():
        project = host.havn.create_project("A")
        with pytest.raises(HAVNValidationError) as info:
            host.havn.sync_owner(project, email, name)
        assert set(info.value.errors) == fields
        assert project.sync_state == "pending"
    assert _count(host, "ProjectMember") == 0
    assert dump(sandbox_of(host))["counts"]["users"] == 0


def test_a_synced_project_keeps_its_owner(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        project = host.havn.sync_owner(host.havn.create_project("A"), "a@a.example", "Ann A")
        with pytest.raises(HAVNValidationError) as info:
            host.havn.sync_owner(project, "other@a.example", "Other")
        assert info.value.field == "email" and "cannot change" in info.value.message
        assert [m.email for m in project.members] == ["a@a.example"]


def test_one_owner_email_cannot_own_two_projects(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        host.havn.sync_owner(host.havn.create_project("A"), "same@x.example", "Sam")
        second = host.havn.create_project("B")
        with pytest.raises(HAVNValidationError) as info:
            host.havn.sync_owner(second, "SAME@x.example", "Sam")
        assert "owns project" in info.value.message
        assert second.sync_state == "pending" and second.referral_code is None


def test_unknown_project_id_names_the_field(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        with pytest.raises(HAVNValidationError) as info:
            host.havn.sync_owner(7, "a@a.example", "Ann")
        assert info.value.field == "project" and "no project with id 7" in info.value.message
        with pytest.raises(HAVNValidationError):
            host.havn.get_project("7")
        with pytest.raises(HAVNValidationError):
            host.havn.get_project(True)


def test_sync_members_in_batches_linked_to_the_project_code(make_host: Any) -> None:
    host = make_host({"HAVN_BULK_MAX_SIZE": 50})
    batches: List[Any] = []
    signalled: List[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        signalled.append((sender, kwargs["project"].id, len(kwargs["members"]), kwargs["result"].summary.success))

    signals.members_synced.connect(receiver)
    try:
        with host.app.app_context():
            project = host.havn.sync_owner(host.havn.create_project("Team"), "lead@team.example", "Lea Lead")
            users = [{"email": f"member{n}@team.example", "name": f"Member {n}"} for n in range(120)]
            result = host.havn.sync_members(project, users,
                                            on_batch=lambda n, total, r: batches.append((n, total, r.summary.total)))
            assert (result.summary.total, result.summary.success, result.summary.errors) == (120, 120, 0)
            members = [m for m in project.members if m.role == "partner"]
            assert len(members) == 120
            assert {m.sync_state for m in members} == {"synced"}
            assert all(m.havn_user_id for m in members)
            code = project.referral_code
            project_id = project.id
    finally:
        signals.members_synced.disconnect(receiver)
    assert batches == [(1, 3, 50), (2, 3, 50), (3, 3, 20)]
    assert signalled == [(host.app, project_id, 120, 120)]
    state = dump(sandbox_of(host))
    owner = next(a for a in state["associates"] if a["referral_code"] == code)
    partners = [u for u in state["users"] if u["email"].startswith("member")]
    assert len(partners) == 120
    assert {u["member_of_id"] for u in partners} == {owner["associate_id"]}
    assert all(u["associate_id"] is None for u in partners)  # linked, not given associates


def test_resyncing_a_member_updates_the_same_row(make_host: Any) -> None:
    host = make_host({"HAVN_BULK_MAX_SIZE": 2})
    with host.app.app_context():
        project = host.havn.sync_owner(host.havn.create_project("Team"), "lead@team.example", "Lea Lead")
        users = [{"email": "p1@team.example", "name": "P One"}, {"email": "p2@team.example", "name": "P Two"},
                 {"email": "p3@team.example", "name": "P Three"}]
        assert host.havn.sync_members(project, users).summary.success == 3
        result = host.havn.sync_members(project, [{"email": "P1@team.example", "name": "P Uno"}])
        assert (result.summary.total, result.summary.success) == (1, 1)
        rows = {m.email_key: m for m in project.members}
        assert len(rows) == 4
        assert (rows["p1@team.example"].name, rows["p1@team.example"].email) == ("P Uno", "P1@team.example")
    assert dump(sandbox_of(host))["counts"]["users"] == 4


def _fake_bulk_havn(request: Request) -> Response:
    """A HAVN that refuses every user whose email starts with "reject" (per-user errors, like HAVN's bulk)."""
    payload = json.loads(request.get_data())
    results, errors = [], []
    for index, user in enumerate(payload["users"]):
        if user["email"].startswith("reject"):
            errors.append({"index": index, "email": user["email"], "error": "User is inactive in HAVN"})
        else:
            results.append({"success": True, "email": user["email"], "user_id": "usr_" + user["email"][:6],
                            "referral_code": payload["referral_code"]})
    body = {"success": bool(results), "message": "Bulk sync completed", "results": results,
            "summary": {"total": len(payload["users"]), "success": len(results), "failed": len(errors)},
            "referral_code": payload["referral_code"], "errors": errors}
    return Response(json.dumps(body), status=200, content_type="application/json")


def test_sync_members_keeps_havns_per_member_errors(make_host: Any, httpserver: Any) -> None:
    httpserver.expect_request("/api/v1/webhook/user-sync", method="POST").respond_with_handler(_fake_bulk_havn)
    host = make_host(http_config(httpserver.url_for("/").rstrip("/"), HAVN_BULK_MAX_SIZE=2))
    with host.app.app_context():
        project = host.havn.create_project("Team")
        project.referral_code, project.sync_state = "HAVN-TT-001", "synced"
        host.db.session.commit()
        users = [{"email": "ok1@team.example", "name": "Ok One"}, {"email": "reject1@team.example", "name": "R"},
                 {"email": "reject2@team.example", "name": "R Two"}, {"email": "ok2@team.example", "name": "Ok"},
                 {"email": "ok3@team.example", "name": "Ok Three"}]
        result = host.havn.sync_members(project, users)
        assert (result.summary.total, result.summary.success, result.summary.errors) == (5, 3, 2)
        assert [(e["index"], e["email"]) for e in result.errors] == \
            [(1, "reject1@team.example"), (2, "reject2@team.example")]
        rows = {m.email: m for m in project.members}
        assert {e: (r.sync_state, r.last_error) for e, r in rows.items()} == {
            "ok1@team.example": ("synced", None), "reject1@team.example": ("failed", "User is inactive in HAVN"),
            "reject2@team.example": ("failed", "User is inactive in HAVN"), "ok2@team.example": ("synced", None),
            "ok3@team.example": ("synced", None)}
        assert rows["ok3@team.example"].havn_user_id == "usr_ok3@te"
    sent = [json.loads(req.get_data()) for req, _ in httpserver.log]
    assert [len(p["users"]) for p in sent] == [2, 2, 1]
    assert {p["referral_code"] for p in sent} == {"HAVN-TT-001"}
    assert {(p["is_owner"], p["create_associate"]) for p in sent} == {(False, False)}


@pytest.mark.parametrize("users, field", [
    ([], "users"),
    ("a@b.example", "users"),
    ({"email": "a@b.example", "name": "A"}, "users"),
    ([{"email": "bad", "name": "A"}], "users[0].email"),
    ([{"email": "a@b.example", "name": ""}], "users[0].name"),
    ([{"email": "a@b.example", "name": "A"}, "x"], "users[1]"),
    ([{"email": "a@b.example", "name": "A"}, {"email": "A@B.example", "name": "B"}], "users[1].email"),
    ([{"email": "lead@team.example", "name": "Lea"}], "users[0].email"),
    ([{"email": "a@b.example", "name": "A", "role": "owner"}], "users[0].role"),
])
def test_sync_members_refuses_bad_lists_and_writes_nothing(make_host: Any, users: Any, field: str) -> None:
    host = make_host()
    with host.app.app_context():
        project = host.havn.sync_owner(host.havn.create_project("Team"), "lead@team.example", "Lea Lead")
        users_before = dump(sandbox_of(host))["counts"]["users"]
        with pytest.raises(HAVNValidationError) as info:
            host.havn.sync_members(project, users)
        assert field in (info.value.errors or {info.value.field: ""})
    assert _count(host, "ProjectMember") == 1
    assert dump(sandbox_of(host))["counts"]["users"] == users_before


def test_sync_members_needs_a_synced_project(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        project = host.havn.create_project("Unsynced")
        with pytest.raises(HAVNValidationError) as info:
            host.havn.sync_members(project, [{"email": "a@b.example", "name": "A"}])
        assert info.value.field == "project" and "sync its owner first" in info.value.message
    assert _count(host, "ProjectMember") == 0


def test_sync_members_marks_everyone_failed_when_havn_is_down(make_host: Any) -> None:
    host = make_host({"HAVN_MAX_RETRIES": 0})
    with host.app.app_context():
        project = host.havn.sync_owner(host.havn.create_project("Team"), "lead@team.example", "Lea Lead")
        sandbox_of(host).faults.configure({"seed": 1, "rates": {"503": 1.0}})
        with pytest.raises(Exception) as info:
            host.havn.sync_members(project, [{"email": "a@b.example", "name": "A"}])
        member = next(m for m in project.members if m.role == "partner")
        assert member.sync_state == "failed"
        assert member.last_error == info.value.message


def test_bulk_size_above_havns_limit_is_a_config_error_at_init(make_host: Any) -> None:
    for size in (51, 100):
        with pytest.raises(HAVNConfigError) as info:
            make_host({"HAVN_BULK_MAX_SIZE": size})
        assert "HAVN_BULK_MAX_SIZE" in info.value.message and "from 1 to 50" in info.value.message


def test_services_say_so_when_the_app_is_client_only(make_host: Any) -> None:
    host = make_host(with_db=False)
    with host.app.app_context():
        with pytest.raises(HAVNConfigError) as info:
            host.havn.create_project("A")
        assert "client-only" in info.value.message


def test_conflicting_code_from_havn_is_refused(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        first = host.havn.sync_owner(host.havn.create_project("A"), "a@a.example", "Ann A")
        # Simulate a project row that already carries the code HAVN will hand out next.
        second = host.havn.create_project("B")
        third = host.havn.create_project("C")
        third.referral_code = "HAVN-BB-001"
        host.db.session.commit()
        with pytest.raises(HAVNConflictError):
            host.havn.sync_owner(second, "b@b.example", "Ben B")
        assert second.sync_state == "failed" and "HAVN-BB-001" in second.last_error
        assert first.referral_code != "HAVN-BB-001"

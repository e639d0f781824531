"""Sandbox backend: POST /user-sync, single and bulk, and referral-code generation."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Iterator

import pytest

from flask_havn.sandbox.backend import SandboxBackend
from flask_havn.sandbox.errors import SandboxError
from flask_havn.sandbox.settings import SandboxSettings
from flask_havn.sandbox.users import initials

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def backend() -> Iterator[SandboxBackend]:
    b = SandboxBackend(SandboxSettings(seed=3, bulk_max_size=5), clock=lambda: NOW)
    yield b
    b.close()


def user(email: str = "john@example.com", name: str = "John Doe", **extra: Any) -> Dict[str, Any]:
    return {"email": email, "name": name, **extra}


def error_of(call: Any) -> SandboxError:
    with pytest.raises(SandboxError) as info:
        call()
    return info.value


def test_single_sync_creates_user_and_associate(backend: SandboxBackend) -> None:
    out = backend.user_sync(user(google_id="g1", avatar="https://img/a.png", country_code="ID"))
    assert out.status == 200 and out.events == []
    body = out.body
    assert (body["success"], body["user_created"], body["associate_created"]) == (True, True, True)
    assert body["referral_code"] == "HAVN-JD-001" == body["associate"]["referral_code"]
    assert body["user_id"] == body["user"]["id"]
    assert body["user"]["email"] == "john@example.com" and body["user"]["google_id"] == "g1"
    assert body["user"]["country_code"] == "ID" and body["user"]["is_active"] is True
    assert body["associate"]["role"] == "partner" and body["associate"]["upline_id"] is None
    assert body["associate"]["associate_name"] == "John Doe"
    assert body["message"] == "User synced successfully"


def test_resync_is_idempotent_and_matches_email_case_insensitively(backend: SandboxBackend) -> None:
    first = backend.user_sync(user(email="John@Example.com")).body
    again = backend.user_sync(user(email="JOHN@example.COM", name="Johnny Doe")).body
    assert (again["user_created"], again["associate_created"]) == (False, False)
    assert again["referral_code"] == first["referral_code"]
    assert again["user_id"] == first["user_id"]
    assert again["user"]["email"] == "John@Example.com"  # stored as first given
    assert again["user"]["name"] == "Johnny Doe"
    counts = backend.dump()["counts"]
    assert (counts["users"], counts["associates"]) == (1, 1)


@pytest.mark.parametrize("name, xx", [
    ("John Doe", "JD"), ("madonna", "MX"), ("Élodie Ñúñez", "EN"), ("123 !!", "XX"),
    ("Anna Maria Lopez", "AM"), ("  jean   paul  ", "JP"),
])
def test_initials(name: str, xx: str) -> None:
    assert initials(name) == xx


def test_codes_count_per_initials_and_grow_past_999(backend: SandboxBackend) -> None:
    codes = [backend.user_sync(user(email=f"u{i}@example.com", name=n)).body["referral_code"]
             for i, n in enumerate(["John Doe", "Jane Dane", "Madonna", "Mary X"])]
    assert codes == ["HAVN-JD-001", "HAVN-JD-002", "HAVN-MX-001", "HAVN-MX-002"]
    backend.seed({"associates": [{"name": "Big", "referral_code": "HAVN-BG-999"}]})
    assert backend.user_sync(user(email="b@example.com", name="Bob Green")).body["referral_code"] == "HAVN-BG-1000"


def test_generated_code_skips_a_custom_code_already_taken(backend: SandboxBackend) -> None:
    backend.seed({"associates": [{"name": "x", "referral_code": "HAVN-JD-001"}]})
    assert backend.user_sync(user()).body["referral_code"] == "HAVN-JD-002"


def test_upline_code_hangs_the_new_associate(backend: SandboxBackend) -> None:
    top = backend.user_sync(user(email="top@example.com", name="Top Person", is_owner=True)).body
    assert top["associate"]["role"] == "owner" and top["user"]["role"] == "owner"
    child = backend.user_sync(user(upline_code=top["referral_code"].lower())).body
    assert child["associate"]["upline_id"] == top["associate"]["associate_id"]
    tree = backend.dump()["associate_tree"]
    assert [n["referral_code"] for n in tree] == ["HAVN-TP-001"]
    assert [n["referral_code"] for n in tree[0]["downlines"]] == ["HAVN-JD-001"]


def test_unknown_upline_is_404_and_stores_nothing(backend: SandboxBackend) -> None:
    err = error_of(lambda: backend.user_sync(user(upline_code="HAVN-ZZ-999")))
    assert (err.status, err.error, err.field) == (404, "NotFound", "upline_code")
    assert "HAVN-ZZ-999" in err.message
    assert backend.dump()["counts"]["users"] == 0


def test_referral_code_without_associate_links_to_existing(backend: SandboxBackend) -> None:
    project = backend.user_sync(user(email="owner@example.com", name="Project Owner", is_owner=True)).body
    member = backend.user_sync(user(referral_code=project["referral_code"], create_associate=False)).body
    assert member["associate_created"] is False
    assert member["associate"]["associate_id"] == project["associate"]["associate_id"]
    assert member["referral_code"] == project["referral_code"]
    dump = backend.dump()
    assert dump["counts"]["associates"] == 1
    linked = [u for u in dump["users"] if u["email"] == "john@example.com"][0]
    assert linked["member_of_id"] == project["associate"]["associate_id"] and linked["associate_id"] is None


def test_referral_code_with_create_associate_hangs_under_it(backend: SandboxBackend) -> None:
    project = backend.user_sync(user(email="owner@example.com", name="Project Owner")).body
    member = backend.user_sync(user(referral_code=project["referral_code"], create_associate=True)).body
    assert member["associate_created"] is True
    assert member["associate"]["upline_id"] == project["associate"]["associate_id"]


def test_unknown_referral_code_is_404(backend: SandboxBackend) -> None:
    err = error_of(lambda: backend.user_sync(user(referral_code="HAVN-NO-001", create_associate=False)))
    assert (err.status, err.field) == (404, "referral_code")


def test_no_associate_when_not_asked(backend: SandboxBackend) -> None:
    body = backend.user_sync(user(create_associate=False)).body
    assert body["associate"] is None and body["referral_code"] is None and body["user_created"] is True


@pytest.mark.parametrize("overrides, field", [
    ({"email": "nope"}, "email"),
    ({"email": None}, "email"),
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"country_code": "id"}, "country_code"),
    ({"country_code": "IDN"}, "country_code"),
    ({"create_associate": "yes"}, "create_associate"),
    ({"is_owner": 1}, "is_owner"),
    ({"upline_code": "ab"}, "upline_code"),
    ({"referral_code": "  "}, "referral_code"),
    ({"google_id": 12}, "google_id"),
])
def test_invalid_single_sync_is_400_naming_the_field(backend: SandboxBackend, overrides: Dict[str, Any],
                                                     field: str) -> None:
    payload = user()
    payload.update(overrides)
    err = error_of(lambda: backend.user_sync(payload))
    assert (err.status, err.field) == (400, field)
    assert backend.dump()["counts"]["users"] == 0


def test_test_mode_sync_stores_nothing(backend: SandboxBackend) -> None:
    out = backend.user_sync(user(), test_mode=True)
    assert out.body["referral_code"] == "HAVN-JD-001" and out.body["user_created"] is True
    assert backend.dump()["counts"] == {"users": 0, "associates": 0, "transactions": 0, "commissions": 0,
                                        "vouchers": 0, "login_tokens": 0}


# -- bulk ------------------------------------------------------------------------------------


def test_bulk_partial_success(backend: SandboxBackend) -> None:
    body = backend.user_sync({"users": [
        user(email="a@example.com", name="Amy Adams"),
        user(email="broken", name="Bad Email"),
        user(email="c@example.com", name="Carl Cox", upline_code="HAVN-NO-404"),
        user(email="d@example.com", name="Dan Day"),
    ]}).body
    assert body["success"] is True
    assert body["summary"] == {"total": 4, "success": 2, "errors": 2, "failed": 2}
    assert [r["user"]["email"] for r in body["results"]] == ["a@example.com", "d@example.com"]
    assert [(e["index"], e["email"]) for e in body["errors"]] == [(1, "broken"), (2, "c@example.com")]
    assert "email" in body["errors"][0]["error"] and "HAVN-NO-404" in body["errors"][1]["error"]
    assert body["referral_code"] == "HAVN-AA-001"
    emails = {u["email"] for u in backend.dump()["users"]}
    assert emails == {"a@example.com", "d@example.com"}  # the failed users left nothing behind


def test_bulk_all_failed_is_not_success(backend: SandboxBackend) -> None:
    body = backend.user_sync({"users": [user(email="x"), user(name="")]}).body
    assert body["success"] is False and body["results"] == [] and body["referral_code"] is None
    assert body["summary"] == {"total": 2, "success": 0, "errors": 2, "failed": 2}


def test_bulk_shared_referral_code_links_the_team(backend: SandboxBackend) -> None:
    project = backend.user_sync(user(email="owner@example.com", name="Owner One", is_owner=True)).body
    body = backend.user_sync({"referral_code": project["referral_code"], "users": [
        user(email="m1@example.com", name="Member One"), user(email="m2@example.com", name="Member Two"),
    ]}).body
    assert body["summary"]["success"] == 2
    assert {r["associate"]["associate_id"] for r in body["results"]} == {project["associate"]["associate_id"]}
    assert {r["associate_created"] for r in body["results"]} == {False}
    assert body["referral_code"] == project["referral_code"]
    assert backend.dump()["counts"]["associates"] == 1


def test_bulk_shared_fields_with_per_user_override(backend: SandboxBackend) -> None:
    project = backend.user_sync(user(email="owner@example.com", name="Owner One")).body
    body = backend.user_sync({"referral_code": project["referral_code"], "create_associate": True,
                              "is_owner": False, "users": [
                                  user(email="m1@example.com", name="Member One", is_owner=True),
                                  user(email="m2@example.com", name="Member Two", create_associate=False)]}).body
    first, second = body["results"]
    assert first["associate_created"] is True and first["associate"]["role"] == "owner"
    assert first["associate"]["upline_id"] == project["associate"]["associate_id"]
    assert second["associate_created"] is False
    assert second["associate"]["associate_id"] == project["associate"]["associate_id"]


def test_bulk_without_referral_creates_associates_by_default(backend: SandboxBackend) -> None:
    body = backend.user_sync({"users": [user(email="a@example.com", name="Amy Adams")]}).body
    assert body["results"][0]["associate_created"] is True


@pytest.mark.parametrize("payload, field", [
    ({"users": []}, "users"),
    ({"users": "a@example.com"}, "users"),
    ({"users": [user(email=f"u{i}@example.com") for i in range(6)]}, "users"),
    ({"users": [user(), "not-an-object"]}, "users[1]"),
    ({"users": [user()], "referral_code": "x"}, "referral_code"),
    ({"users": [user()], "create_associate": "true"}, "create_associate"),
])
def test_bad_bulk_requests_are_400(backend: SandboxBackend, payload: Dict[str, Any], field: str) -> None:
    err = error_of(lambda: backend.user_sync(payload))
    assert (err.status, err.field) == (400, field)
    assert backend.dump()["counts"]["users"] == 0


def test_bulk_unknown_shared_referral_fails_each_user(backend: SandboxBackend) -> None:
    body = backend.user_sync({"referral_code": "HAVN-NO-001", "users": [user()]}).body
    assert body["summary"]["errors"] == 1 and "HAVN-NO-001" in body["errors"][0]["error"]

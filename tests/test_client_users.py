"""users.sync and users.sync_bulk: payloads, validation, batching and merging."""
from __future__ import annotations

import datetime

import pytest

from _client_fixtures import *  # noqa: F401,F403 - fixtures
from _client_fixtures import Script, json_response
from flask_havn.errors import HAVNAPIError, HAVNValidationError

PATH = "/api/v1/webhook/user-sync"

SINGLE = {
    "success": True, "message": "User synced successfully", "user_created": True, "associate_created": True,
    "user": {"id": "usr_456", "email": "user@example.com", "name": "John Doe", "is_active": True,
             "google_id": "google123", "avatar": "https://img.example/a.png"},
    "associate": {"associate_id": "assoc_123", "associate_name": "John Doe", "referral_code": "HAVN-SE-002",
                  "type": "PARTNER", "is_active": True, "upline_id": "assoc_001"},
}


def test_guide_example_sync_keyword_for_keyword(script: Script, make_client):
    script.reply(json_response(SINGLE))
    result = make_client().users.sync(email="owner@shop.com", name="Shop Owner", is_owner=True,
                                      upline_code="HAVN-MJ-001")
    (seen,) = script.seen
    assert seen.method == "POST" and seen.path == PATH
    assert seen.json == {"email": "owner@shop.com", "name": "Shop Owner", "is_owner": True,
                         "upline_code": "HAVN-MJ-001", "create_associate": True}
    assert result.success and result.user_created and result.associate_created
    assert result.user.id == "usr_456" and result.associate.upline_id == "assoc_001"
    assert result.referral_code == "HAVN-SE-002" and result.user_id == "usr_456"


def test_sync_sends_booleans_always_and_drops_none(script: Script, make_client):
    make_client().users.sync("u@example.com", "U", create_associate=False, google_id="g1",
                             picture="https://p", avatar="https://a", country_code="ID",
                             referral_code=" HAVN-A-001 ")
    assert script.seen[0].json == {"email": "u@example.com", "name": "U", "is_owner": False,
                                   "create_associate": False, "google_id": "g1", "picture": "https://p",
                                   "avatar": "https://a", "country_code": "ID", "referral_code": "HAVN-A-001"}


@pytest.mark.parametrize("kwargs, field", [
    ({"email": "bad"}, "email"),
    ({"email": None}, "email"),
    ({"name": ""}, "name"),
    ({"name": "n" * 201}, "name"),
    ({"name": 5}, "name"),
    ({"is_owner": "yes"}, "is_owner"),
    ({"is_owner": None}, "is_owner"),
    ({"create_associate": 1}, "create_associate"),
    ({"upline_code": "AB"}, "upline_code"),
    ({"referral_code": "R" * 51}, "referral_code"),
    ({"country_code": "id"}, "country_code"),
    ({"country_code": "IDN"}, "country_code"),
    ({"google_id": 123}, "google_id"),
    ({"avatar": ["x"]}, "avatar"),
])
def test_sync_rules(script: Script, make_client, kwargs, field):
    kw = dict(email="u@example.com", name="U")
    kw.update(kwargs)
    with pytest.raises(HAVNValidationError) as info:
        make_client().users.sync(**kw)
    assert info.value.field == field
    assert script.seen == []


def test_sync_tolerates_missing_associate_and_top_level_synonyms(script: Script, make_client):
    script.reply(json_response({"success": True, "associate": None, "referral_code": "HAVN-TOP-1",
                                "user_id": "usr_9", "user": "not-a-dict", "new": 1}))
    result = make_client().users.sync("u@example.com", "U")
    assert result.associate is None and result.user is None
    assert result.referral_code == "HAVN-TOP-1" and result.user_id == "usr_9"
    assert result.user_created is False and result.message == ""


# -- bulk ---------------------------------------------------------------------


def _users(n):
    return [{"email": f"user{i}@example.com", "name": f"User {i}"} for i in range(n)]


def _bulk_server(failing_local_index):
    """A bulk endpoint: first batch mints HAVN-SE-002; each batch fails one user."""
    calls = []

    def answer(seen):
        calls.append(seen)
        users = seen.json["users"]
        bad = failing_local_index[len(calls) - 1]
        ok = [u for i, u in enumerate(users) if i != bad]
        return json_response({
            "success": True, "message": "Bulk sync completed",
            "results": [{"email": u["email"], "success": True, "user_created": True, "associate_created": True}
                        for u in ok],
            # The first batch speaks the SDK's "errors", the others the docs' "failed".
            "summary": ({"total": len(users), "success": len(ok), "errors": 1} if len(calls) == 1
                        else {"total": len(users), "success": len(ok), "failed": 1}),
            "referral_code": "HAVN-SE-002" if len(calls) == 1 else "HAVN-OTHER-9",
            "errors": [{"index": bad, "email": users[bad]["email"], "error": "duplicate"}],
        })

    return answer


def test_bulk_120_users_in_three_batches_merged(script: Script, make_client):
    script.reply(_bulk_server({0: 3, 1: 10, 2: 0}))
    progress = []
    users = _users(120)
    result = make_client().users.sync_bulk(users, batch_size=50,
                                           on_batch=lambda n, total, r: progress.append((n, total, r.summary.total)))
    assert [len(s.json["users"]) for s in script.seen] == [50, 50, 20]
    assert "referral_code" not in script.seen[0].json
    assert [s.json.get("referral_code") for s in script.seen[1:]] == ["HAVN-SE-002", "HAVN-SE-002"]
    assert progress == [(1, 3, 50), (2, 3, 50), (3, 3, 20)]
    assert (result.summary.total, result.summary.success, result.summary.errors) == (120, 117, 3)
    assert [e["index"] for e in result.errors] == [3, 60, 100]
    assert [users[e["index"]]["email"] for e in result.errors] == [e["email"] for e in result.errors]
    assert len(result.results) == 117
    assert result.referral_code == "HAVN-SE-002" and result.success is True
    assert result.message == "Bulk sync completed"
    # Users went out verbatim, in order.
    assert [u for s in script.seen for u in s.json["users"]] == users


def test_bulk_guide_example_caller_referral_code_is_kept(script: Script, make_client):
    script.reply(_bulk_server({0: 0, 1: 0}))
    make_client().users.sync_bulk(users=_users(60), referral_code="HAVN-MJ-001")
    assert [s.json["referral_code"] for s in script.seen] == ["HAVN-MJ-001", "HAVN-MJ-001"]
    assert [len(s.json["users"]) for s in script.seen] == [50, 10]


def test_bulk_shared_fields_and_verbatim_users(script: Script, make_client):
    users = [{"email": "a@example.com", "name": "A", "is_owner": True, "note": None, "custom": {"k": [1]}},
             {"email": "b@example.com", "name": "B", "upline_code": "HAVN-B-001"}]
    make_client().users.sync_bulk(users, upline_code=" HAVN-UP-1 ", is_owner=False, create_associate=True)
    assert script.seen[0].json == {"users": users, "upline_code": "HAVN-UP-1", "is_owner": False,
                                   "create_associate": True}


@pytest.mark.parametrize("users, field", [
    ([{"email": "a@example.com", "name": "A"}, {"email": "nope", "name": "B"}], "users[1].email"),
    ([{"email": "a@example.com"}], "users[0].name"),
    ([{"email": "a@example.com", "name": "x" * 201}], "users[0].name"),
    ([{"email": "a@example.com", "name": "A", "upline_code": "AB"}], "users[0].upline_code"),
    ([{"email": "a@example.com", "name": "A", "referral_code": " "}], "users[0].referral_code"),
    ([{"email": "a@example.com", "name": "A", "country_code": "Indonesia"}], "users[0].country_code"),
    ([{"email": "a@example.com", "name": "A", "is_owner": "true"}], "users[0].is_owner"),
    ([{"email": "a@example.com", "name": "A", "create_associate": 0}], "users[0].create_associate"),
    ([{"email": "a@example.com", "name": "A", "avatar": 7}], "users[0].avatar"),
    ([{"email": "a@example.com", "name": "A", "joined": datetime.date(2025, 1, 1)}], "users[0]"),
    (["a@example.com"], "users[0]"),
    ([], "users"),
    ("a@example.com", "users"),
    ({"email": "a@example.com", "name": "A"}, "users"),
])
def test_bulk_validates_everything_before_sending(script: Script, make_client, users, field):
    with pytest.raises(HAVNValidationError) as info:
        make_client().users.sync_bulk(users)
    assert info.value.field == field
    assert script.seen == []


def test_bulk_error_in_the_last_of_120_users_sends_nothing(script: Script, make_client):
    users = _users(120)
    users[119]["email"] = "broken"
    with pytest.raises(HAVNValidationError) as info:
        make_client().users.sync_bulk(users)
    assert info.value.field == "users[119].email"
    assert script.seen == []


@pytest.mark.parametrize("kwargs, field", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 51}, "batch_size"),
    ({"batch_size": True}, "batch_size"),
    ({"upline_code": "x"}, "upline_code"),
    ({"referral_code": "x" * 60}, "referral_code"),
    ({"is_owner": "no"}, "is_owner"),
    ({"create_associate": "auto"}, "create_associate"),
    ({"on_batch": "print"}, "on_batch"),
])
def test_bulk_shared_argument_rules(script: Script, make_client, kwargs, field):
    with pytest.raises(HAVNValidationError) as info:
        make_client().users.sync_bulk(_users(2), **kwargs)
    assert info.value.field == field
    assert script.seen == []


def test_bulk_failure_mid_way_keeps_partial_result(script: Script, make_client):
    first = json_response({"success": True, "summary": {"total": 2, "success": 2, "errors": 0},
                           "referral_code": "HAVN-SE-002", "results": [{"email": "user0@example.com"},
                                                                       {"email": "user1@example.com"}]})
    script.reply(first, json_response({"error": "Invalid", "message": "bad batch"}, 400))
    with pytest.raises(HAVNAPIError) as info:
        make_client().users.sync_bulk(_users(3), batch_size=2)
    partial = info.value.partial_result
    assert partial.summary.total == 2 and partial.referral_code == "HAVN-SE-002"
    assert [r.email for r in partial.results] == ["user0@example.com", "user1@example.com"]
    assert len(script.seen) == 2


def test_bulk_first_batch_without_code_lets_a_later_one_provide_it(script: Script, make_client):
    script.reply(json_response({"success": False, "summary": {"total": 1, "errors": 1}, "errors": [{}]}),
                 json_response({"success": True, "results": [{"associate": {"referral_code": "HAVN-LATE-1"}}]}),
                 json_response({"success": True}))
    result = make_client().users.sync_bulk(_users(3), batch_size=1)
    assert [s.json.get("referral_code") for s in script.seen] == [None, None, "HAVN-LATE-1"]
    assert result.referral_code == "HAVN-LATE-1"
    assert result.errors == [{"index": None, "email": None, "error": ""}]


def test_bulk_max_size_is_the_default_batch_and_the_cap(script: Script, make_client):
    client = make_client(bulk_max_size=2)
    client.users.sync_bulk(_users(5))
    assert [len(s.json["users"]) for s in script.seen] == [2, 2, 1]
    with pytest.raises(HAVNValidationError, match="HAVN_BULK_MAX_SIZE") as info:
        client.users.sync_bulk(_users(5), batch_size=3)
    assert info.value.field == "batch_size"
    assert len(script.seen) == 3


def test_configured_bulk_max_size_above_50_is_honoured(script: Script, make_client):
    make_client(bulk_max_size=100).users.sync_bulk(_users(120))
    assert [len(s.json["users"]) for s in script.seen] == [100, 20]

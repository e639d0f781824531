"""users.iter_sync_bulk: one BatchResult per completed batch, requests sent as the caller iterates; bulk wire bytes."""
from __future__ import annotations

import pytest

from _client_fixtures import *  # noqa: F401,F403 - fixtures
from _client_fixtures import Script, json_response
from flask_havn.errors import HAVNAPIError, HAVNValidationError
from flask_havn.results import BatchResult, BulkSyncResult
from flask_havn.signing import canonical_json


def _users(n):
    return [{"email": f"user{i}@example.com", "name": f"User {i}"} for i in range(n)]


def _answer(seen):
    """Every user synced but the second of each batch; the first batch mints HAVN-SE-002."""
    users = seen.json["users"]
    ok = [u for i, u in enumerate(users) if i != 1]
    return json_response({
        "success": True, "message": "Bulk sync completed",
        "results": [{"email": u["email"], "success": True, "user_id": "usr_" + u["email"].split("@")[0]}
                    for u in ok],
        "summary": {"total": len(users), "success": len(ok), "errors": len(users) - len(ok)},
        "referral_code": "HAVN-SE-002",
        "errors": [{"index": 1, "email": users[1]["email"], "error": "duplicate"}] if len(users) > 1 else [],
    })


def test_each_batch_is_yielded_as_it_completes_and_requests_follow_the_iteration(script: Script, make_client):
    script.reply(_answer)
    users = _users(7)
    batches = make_client().users.iter_sync_bulk(users, batch_size=3)
    assert script.seen == []  # validated and serialised, nothing sent yet
    first = next(batches)
    assert len(script.seen) == 1
    assert isinstance(first, BatchResult)
    assert (first.batch_no, first.total_batches, first.offset, first.size) == (1, 3, 0, 3)
    rest = list(batches)
    assert [(b.batch_no, b.offset, b.size) for b in rest] == [(2, 3, 3), (3, 6, 1)]
    assert len(script.seen) == 3
    # Error indexes point into the caller's list; HAVN's own answer keeps its batch-local ones.
    assert [e["index"] for b in (first, *rest) for e in b.errors] == [1, 4]
    assert [users[e["index"]]["email"] for e in rest[0].errors] == ["user4@example.com"]
    assert rest[0].result.errors[0]["index"] == 1
    assert [r.email for r in rest[0].results] == ["user3@example.com", "user5@example.com"]
    assert [r.user_id for r in rest[0].results] == ["usr_user3", "usr_user5"]
    assert (first.summary.total, first.summary.success, first.summary.errors) == (3, 2, 1)
    # Later batches are linked to the code the first returned.
    assert [s.json.get("referral_code") for s in script.seen] == [None, "HAVN-SE-002", "HAVN-SE-002"]
    assert first.referral_code == "HAVN-SE-002"


def test_stopping_the_iteration_sends_no_further_batch(script: Script, make_client):
    script.reply(_answer)
    for batch in make_client().users.iter_sync_bulk(_users(10), batch_size=2):
        if batch.batch_no == 2:
            break
    assert len(script.seen) == 2


def test_every_user_is_checked_when_iter_sync_bulk_is_called(script: Script, make_client):
    users = _users(120)
    users[119]["joined"] = float("nan")
    with pytest.raises(HAVNValidationError) as info:
        make_client().users.iter_sync_bulk(users)  # no iteration needed
    assert info.value.field == "users[119]"
    users[119] = {"email": "user119@example.com", "name": "x" * 201}
    with pytest.raises(HAVNValidationError) as info:
        make_client().users.iter_sync_bulk(users)
    assert info.value.field == "users[119].name"
    assert script.seen == []


def test_a_failing_batch_raises_from_the_iteration_after_the_earlier_ones(script: Script, make_client):
    script.reply(json_response({"success": True, "summary": {"total": 2, "success": 2}}),
                 json_response({"error": "Invalid", "message": "bad batch"}, 400))
    seen = []
    with pytest.raises(HAVNAPIError, match="bad batch"):
        for batch in make_client().users.iter_sync_bulk(_users(5), batch_size=2):
            seen.append(batch.batch_no)
    assert seen == [1] and len(script.seen) == 2


@pytest.mark.parametrize("shared", [
    {},
    {"upline_code": "HAVN-UP-001", "referral_code": "HAVN-RF-001", "is_owner": False, "create_associate": True},
    {"is_owner": True},
])
def test_bulk_bodies_are_the_canonical_json_of_the_payload(script: Script, make_client, shared):
    users = [{"name": "Zoë", "email": "z@example.com", "tags": ["b", "a"], "n": 1.5}, *_users(2)]
    make_client().users.sync_bulk(users, **shared)
    (seen,) = script.seen
    assert seen.body == canonical_json({"users": users, **shared})


def test_sync_bulk_still_merges_and_reports_each_batch(script: Script, make_client):
    script.reply(_answer)
    progress = []
    result = make_client().users.sync_bulk(_users(5), batch_size=2,
                                           on_batch=lambda n, total, r: progress.append((n, total, type(r))))
    assert progress == [(1, 3, BulkSyncResult), (2, 3, BulkSyncResult), (3, 3, BulkSyncResult)]
    assert [e["index"] for e in result.errors] == [1, 3]
    assert [r.email for r in result.results] == ["user0@example.com", "user2@example.com", "user4@example.com"]
    assert (result.summary.total, result.summary.success, result.summary.errors) == (5, 3, 2)

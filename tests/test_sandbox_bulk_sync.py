"""Bulk user sync is batch-invariant: HAVNClient → sandbox, one request of N users or N split in batches.

With no referral code and ``create_associate`` unset, only the first
successful user gets an associate and the others are linked to its code
(contract §3.5, USER_SYNC_WEBHOOK.md); later batches carry that code as their
shared ``referral_code``, so splitting must not change the outcome.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from flask_havn.client import HAVNClient
from flask_havn.config import SANDBOX_API_KEY, SANDBOX_BASE_URL, SANDBOX_WEBHOOK_SECRET
from flask_havn.sandbox import create_app
from flask_havn.sandbox.adapter import WSGIAdapter
from flask_havn.sandbox.app import get_state

USERS = [{"email": f"member{i:03d}@example.com", "name": f"Member {i:03d}"} for i in range(120)]


class Sandbox:
    """An in-process sandbox and a real HAVNClient talking to it through WSGIAdapter."""

    def __init__(self, bulk_max_size: int) -> None:
        self.app = create_app({"HAVN_SANDBOX_BULK_MAX_SIZE": bulk_max_size, "HAVN_SANDBOX_SEED": 11})
        self.client = HAVNClient(api_key=SANDBOX_API_KEY, webhook_secret=SANDBOX_WEBHOOK_SECRET,
                                 base_url=SANDBOX_BASE_URL, bulk_max_size=bulk_max_size, max_retries=0)
        self.client.transport.mount(SANDBOX_BASE_URL, WSGIAdapter(self.app))

    def state(self) -> Dict[str, Any]:
        return get_state(self.app).backend.dump()

    def close(self) -> None:
        self.client.close()
        get_state(self.app).close()


@pytest.fixture
def make_sandbox() -> Iterator[Any]:
    made: List[Sandbox] = []

    def make(bulk_max_size: int) -> Sandbox:
        made.append(Sandbox(bulk_max_size))
        return made[-1]

    yield make
    for sandbox in made:
        sandbox.close()


def shape(state: Dict[str, Any]) -> Tuple[Any, ...]:
    """The state with ids replaced by referral codes: who owns which associate, who is linked where."""
    code_of = {a["associate_id"]: a["referral_code"] for a in state["associates"]}
    associates = sorted((a["referral_code"], a["associate_name"], code_of.get(a["upline_id"]), a["email"])
                        for a in state["associates"])
    users = sorted((u["email"], u["name"], code_of.get(u["associate_id"]), code_of.get(u["member_of_id"]))
                   for u in state["users"])
    return tuple(associates), tuple(users)


def test_120_users_in_batches_of_50_end_like_one_request(make_sandbox: Any) -> None:
    split = make_sandbox(50)
    batches: List[Tuple[int, int]] = []
    result = split.client.users.sync_bulk(USERS, batch_size=50,
                                          on_batch=lambda no, total, _r: batches.append((no, total)))
    assert batches == [(1, 3), (2, 3), (3, 3)]
    assert result.summary.total == 120 and result.summary.success == 120 and result.errors == []

    state = split.state()
    assert state["counts"]["associates"] == 1 and state["counts"]["users"] == 120
    (associate,) = state["associates"]
    assert (associate["email"], associate["upline_id"]) == ("member000@example.com", None)
    code = associate["referral_code"]
    assert result.referral_code == code
    owner = next(u for u in state["users"] if u["email"] == "member000@example.com")
    assert owner["associate_id"] == associate["associate_id"]
    members = [u for u in state["users"] if u["email"] != "member000@example.com"]
    assert len(members) == 119
    assert {(u["member_of_id"], u["associate_id"]) for u in members} == {(associate["associate_id"], None)}

    whole = make_sandbox(200)
    one = whole.client.users.sync_bulk(USERS)  # one unsplit request of 120
    assert one.summary.success == 120 and one.referral_code == code
    assert shape(whole.state()) == shape(state)


def test_first_successful_user_is_the_anchor_and_explicit_choices_are_kept(make_sandbox: Any) -> None:
    sandbox = make_sandbox(50)
    users = [
        {"email": "broken", "name": "Bad Email"},                                  # fails alone
        {"email": "amy@example.com", "name": "Amy Adams"},                         # first success: the associate
        {"email": "bob@example.com", "name": "Bob Brown"},                         # linked to Amy's code
        {"email": "cat@example.com", "name": "Cat Cole", "create_associate": True},  # asked for her own
        {"email": "dan@example.com", "name": "Dan Day", "create_associate": False},  # asked for none
    ]
    answer = sandbox.client.transport.request("POST", "/api/v1/webhook/user-sync", payload={"users": users})
    assert answer["summary"] == {"total": 5, "success": 4, "errors": 1, "failed": 1}
    assert [e["index"] for e in answer["errors"]] == [0]
    amy, bob, cat, dan = answer["results"]
    assert amy["associate_created"] is True and answer["referral_code"] == amy["referral_code"]
    assert (bob["associate_created"], bob["referral_code"]) == (False, amy["referral_code"])
    assert cat["associate_created"] is True and cat["referral_code"] != amy["referral_code"]
    assert dan["associate_created"] is False and dan["associate"] is None
    state = sandbox.state()
    assert state["counts"]["associates"] == 2
    by_email: Dict[str, Optional[str]] = {u["email"]: u["member_of_id"] for u in state["users"]}
    assert by_email["bob@example.com"] == amy["associate"]["associate_id"]
    assert by_email["dan@example.com"] is None


def test_shared_create_associate_true_still_gives_everyone_an_associate(make_sandbox: Any) -> None:
    sandbox = make_sandbox(50)
    result = sandbox.client.users.sync_bulk(USERS[:4], create_associate=True)
    assert result.summary.success == 4
    assert sandbox.state()["counts"]["associates"] == 4

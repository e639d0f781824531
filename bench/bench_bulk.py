"""``users.sync_bulk`` of 10,000 members (200 requests of 50) against 200 raw posts, and its peak memory.

Time: our bulk sync (``sync_bulk``, and the streaming ``iter_sync_bulk``)
against ``requests.Session.post`` of exactly the 200 bodies (and headers) our
client sends, to the same loopback keep-alive server answering every batch
with the same bytes: a small fixed answer (the SDK fixture's result items)
and a sandbox-full-size one (what the HAVN sandbox answers for 50 new
members, about 28 KiB). A third line reads every row after ``sync_bulk``
and compares with raw posts that also decode each answer. Memory:
tracemalloc's peak while syncing with the full-size answer, the list form
(keeps every row) against raw posts that keep every decoded answer (its
floor), and the streaming form (keeps none) against raw posts keeping none.
"""
from __future__ import annotations

import json
import sys
import tracemalloc
from typing import Any, Callable, Dict, List, Tuple

import requests

from flask_havn.client import HAVNClient
from flask_havn.config import SANDBOX_API_KEY, SANDBOX_BASE_URL, SANDBOX_WEBHOOK_SECRET
from flask_havn.transport import Transport

from ._loopback import CaptureAdapter, fixed_answer_server
from ._timing import best_of_alternating, report

API_KEY, SECRET = "ak_bench_0123456789", "bench-secret"
PATH = "/api/v1/webhook/user-sync"
BATCH = 50
#: Goals (issue 16): with the fixed answer, ours / raw posts at or below GOAL; with the sandbox-size
#: answer, the peak of a 10,000-member sync below MEMORY_GOAL_MB. The other lines are for reading.
GOAL = 1.15
MEMORY_GOAL_MB = 20.0
FULL_MEMBERS = 10_000


def members(count: int) -> List[Dict[str, Any]]:
    """``count`` distinct members as a host would pass them."""
    return [{"email": f"member{i:05d}@example.com", "name": f"Member {i:05d}"} for i in range(count)]


def fixed_answer(size: int = BATCH) -> bytes:
    """A small answer: the official SDK fixture's result items (email and three flags) for ``size`` users."""
    return json.dumps({
        "success": True, "message": "Bulk sync completed", "referral_code": "HAVN-ME-001",
        "results": [{"email": f"member{i:05d}@example.com", "success": True, "user_created": True,
                     "associate_created": i == 0} for i in range(size)],
        "summary": {"total": size, "success": size, "errors": 0, "failed": 0}, "errors": [],
    }).encode()


def sandbox_answer(size: int = BATCH) -> bytes:
    """What the HAVN sandbox answers to a bulk sync of ``size`` new members (user and associate objects)."""
    from flask_havn.sandbox import create_app
    from flask_havn.sandbox.adapter import WSGIAdapter
    from flask_havn.sandbox.app import get_state

    app = create_app({"HAVN_SANDBOX_SEED": 1})
    try:
        with Transport(api_key=SANDBOX_API_KEY, webhook_secret=SANDBOX_WEBHOOK_SECRET,
                       base_url=SANDBOX_BASE_URL, max_retries=0) as transport:
            transport.mount(SANDBOX_BASE_URL, WSGIAdapter(app))
            answer = transport.request("POST", PATH, payload={"users": members(size)})
    finally:
        get_state(app).close()
    return json.dumps(answer).encode()


def wire_requests(url: str, users: List[Dict[str, Any]], answer: bytes) -> List[Tuple[bytes, Dict[str, str]]]:
    """Body and headers of every request our bulk sync of ``users`` sends."""
    capture = CaptureAdapter(answer)
    with HAVNClient(api_key=API_KEY, webhook_secret=SECRET, base_url=url) as client:
        client.transport.mount(url, capture)
        client.users.sync_bulk(users, batch_size=BATCH)
    return [(r.body, dict(r.headers)) for r in capture.requests]  # type: ignore[misc]


def measure_time(count: int, answer: bytes, *, rounds: int) -> Dict[str, float]:
    """Seconds per whole sync of ``count`` members, candidates taking turns.

    ``list``: ``sync_bulk``; ``stream``: ``iter_sync_bulk`` consumed;
    ``list_read``: ``sync_bulk`` then every row's ``email`` and ``user_id``
    read (what the project service does); ``raw``: the same bodies posted;
    ``raw_decoded``: posted and every answer decoded with ``json.loads``.
    """
    users = members(count)
    with fixed_answer_server(answer) as url:
        sent = wire_requests(url, users, answer)
        client = HAVNClient(api_key=API_KEY, webhook_secret=SECRET, base_url=url)
        raw_session = requests.Session()
        endpoint = url + PATH

        def as_list() -> None:
            client.users.sync_bulk(users, batch_size=BATCH)

        def as_stream() -> None:
            for _batch in client.users.iter_sync_bulk(users, batch_size=BATCH):
                pass

        def as_list_read() -> None:
            for row in client.users.sync_bulk(users, batch_size=BATCH).results:
                _ = (row.email, row.user_id)

        def raw_posts() -> None:
            for body, headers in sent:
                _ = raw_session.post(endpoint, data=body, headers=headers, timeout=(30, 30)).content

        def raw_decoded() -> None:
            for body, headers in sent:
                json.loads(raw_session.post(endpoint, data=body, headers=headers, timeout=(30, 30)).content)

        candidates = {"list": as_list, "stream": as_stream, "list_read": as_list_read, "raw": raw_posts,
                      "raw_decoded": raw_decoded}
        try:
            for fn in candidates.values():
                fn()  # warm up
            return best_of_alternating(candidates, rounds=rounds, number=1)
        finally:
            client.close()
            raw_session.close()


def _peak(fn: Callable[[], object]) -> float:
    """Peak bytes traced while ``fn`` runs (what it allocates, not what existed before)."""
    tracemalloc.start()
    try:
        fn()
        return float(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def measure_memory(count: int, answer: bytes) -> Dict[str, float]:
    """Peak bytes of a sync of ``count`` members: list form, streaming form, and raw posts keeping all or none."""
    users = members(count)
    with fixed_answer_server(answer) as url:
        sent = wire_requests(url, users, answer)
        endpoint = url + PATH
        peaks: Dict[str, float] = {}
        with HAVNClient(api_key=API_KEY, webhook_secret=SECRET, base_url=url) as client, \
                requests.Session() as raw_session:
            client.users.sync_bulk(users[:BATCH], batch_size=BATCH)  # connection and caches warm, untraced
            _ = raw_session.post(endpoint, data=sent[0][0], headers=sent[0][1]).content

            def keep_all() -> None:
                kept = [raw_session.post(endpoint, data=body, headers=headers).json() for body, headers in sent]
                assert len(kept) == len(sent)

            def keep_none() -> None:
                for body, headers in sent:
                    raw_session.post(endpoint, data=body, headers=headers).json()

            peaks["list"] = _peak(lambda: client.users.sync_bulk(users, batch_size=BATCH))
            peaks["stream"] = _peak(lambda: [None for _ in client.users.iter_sync_bulk(users, batch_size=BATCH)])
            peaks["raw_keep_all"] = _peak(keep_all)
            peaks["raw_keep_none"] = _peak(keep_none)
        return peaks


def _report_memory(name: str, ours: float, baseline: float, baseline_name: str, goal_mb: float = 0.0) -> None:
    line = (f"{name:<44} ours {ours / 2**20:8.2f} MB   {baseline_name} {baseline / 2**20:8.2f} MB   "
            f"ratio {ours / baseline:5.2f}")
    if goal_mb:
        line += f"   goal < {goal_mb:.0f} MB ({'met' if ours / 2**20 < goal_mb else 'NOT met'})"
    print(line)


def measure(count: int, *, rounds: int) -> Dict[str, Dict[str, float]]:
    """Every figure for a sync of ``count`` members: times with each answer, and peak memory."""
    full = sandbox_answer()
    return {
        "fixed": measure_time(count, fixed_answer(), rounds=rounds),
        "full": measure_time(count, full, rounds=rounds),
        "memory": measure_memory(count, full),
    }


def run(quick: bool = False) -> Dict[str, Dict[str, float]]:
    count = 1_000 if quick else FULL_MEMBERS
    figures = measure(count, rounds=2 if quick else 11)
    print_figures(count, figures)
    return figures


def print_figures(count: int, figures: Dict[str, Dict[str, float]]) -> None:
    """The lines of :func:`run`: ours, baseline, ratio and goal for each figure."""
    label = f"{count:,} members"
    posts = f"{count // BATCH} raw posts"
    for kind, what, goal in (("fixed", "fixed answer", GOAL), ("full", "sandbox-size answer", None)):
        times = figures[kind]
        report(f"sync_bulk {label}, {what}", times["list"], times["raw"], posts, goal=goal)
        report(f"iter_sync_bulk {label}, {what}", times["stream"], times["raw"], posts, goal=goal)
        report(f"sync_bulk + rows read {label}, {what}", times["list_read"], times["raw_decoded"],
               posts + " + json.loads")
    peaks = figures["memory"]
    goal_mb = MEMORY_GOAL_MB if count == FULL_MEMBERS else 0.0
    _report_memory(f"sync_bulk {label}, peak memory", peaks["list"], peaks["raw_keep_all"],
                   "raw, answers kept", goal_mb)
    _report_memory(f"iter_sync_bulk {label}, peak memory", peaks["stream"], peaks["raw_keep_none"],
                   "raw, none kept", goal_mb)


if __name__ == "__main__":
    run("--quick" in sys.argv)

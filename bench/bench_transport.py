"""The pooled per-app transport against a fresh connection per call (what a naive client does).

Both sides send the same signed user-sync call to a loopback HTTP/1.1
keep-alive server; the ratio shows what connection pooling below the
request-scoped client saves.
"""
from __future__ import annotations

import json
import sys
from typing import Tuple

from flask_havn.client import HAVNClient
from flask_havn.transport import Transport

from ._loopback import fixed_answer_server
from ._timing import best_of_alternating, report

_ANSWER = json.dumps({"success": True, "referral_code": "HAVN-AB-001", "user_id": "usr_1"}).encode()


def run(quick: bool = False) -> Tuple[float, float]:
    number, rounds = (20, 2) if quick else (200, 5)
    with fixed_answer_server(_ANSWER) as url:
        pooled = HAVNClient(transport=Transport(api_key="k", webhook_secret="s", base_url=url))

        def ours() -> None:
            pooled.users.sync(email="o@example.com", name="Owner")

        def fresh_connection() -> None:
            with HAVNClient(api_key="k", webhook_secret="s", base_url=url) as client:
                client.users.sync(email="o@example.com", name="Owner")

        ours()
        fresh_connection()
        times = best_of_alternating({"ours": ours, "fresh": fresh_connection}, rounds=rounds, number=number)
        pooled.close()
    report("user-sync call, pooled per-app transport", times["ours"], times["fresh"], "new connection per call")
    return times["ours"], times["fresh"]


if __name__ == "__main__":
    run("--quick" in sys.argv)

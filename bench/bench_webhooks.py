"""Inbound webhook verification against the reference ``standardwebhooks`` package.

Both verify the same signed 2 KiB event; the ratio shows whether our
verifier (several secrets, constant-time over every pair) costs more than
the reference implementation's single-secret check.
"""
from __future__ import annotations

import base64
import json
import sys
import time
from typing import Tuple

from standardwebhooks.webhooks import Webhook

from flask_havn.signing import verify_webhook, webhook_headers

from ._timing import best_of_alternating, report

SECRET = "whsec_" + base64.b64encode(b"benchmark-secret-0123456789abcdef").decode()


def run(quick: bool = False) -> Tuple[float, float]:
    number, repeat = (200, 2) if quick else (5000, 5)
    body = json.dumps({"id": "evt_" + "x" * 24, "type": "commission.distributed",
                       "data": {"padding": "é" * 1000}}).encode()
    headers = webhook_headers([SECRET], "evt_" + "x" * 24, body, timestamp=int(time.time()))
    reference = Webhook(SECRET)
    text = body.decode()

    def ours() -> None:
        verify_webhook([SECRET], headers, body)

    def theirs() -> None:
        reference.verify(text, headers)

    times = best_of_alternating({"ours": ours, "theirs": theirs}, rounds=repeat, number=number)
    report("verify a signed 2 KiB event", times["ours"], times["theirs"], "standardwebhooks")
    return times["ours"], times["theirs"]


if __name__ == "__main__":
    run("--quick" in sys.argv)

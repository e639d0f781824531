"""``client.transactions.send`` against a raw ``Session.post`` of the same bytes, and against the official SDK.

All three send one transaction to the same loopback HTTP/1.1 keep-alive
server, which answers a full transaction (five commission levels). The raw
post sends exactly the bytes and headers our client sends and only reads the
answer: the ratio is the whole cost of validation, signing, the transport
and typed parsing. The official SDK (``../shared/reference/havn-sdk-1.3.0``,
when present beside the project) does the same job its own way.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import requests

from flask_havn.client import HAVNClient
from flask_havn.transport import Transport

from ._loopback import CaptureAdapter, fixed_answer_server
from ._timing import best_of_alternating, report

API_KEY, SECRET = "ak_bench_0123456789", "bench-secret"
#: The official SDK, kept beside the project by the workspace (absent in some clones).
SDK_PATH = Path(__file__).resolve().parents[2] / "shared" / "reference" / "havn-sdk-1.3.0"
#: ours / raw post must stay at or below this; ours / SDK below 1.0.
GOAL_RAW = 1.05
GOAL_SDK = 1.0

SEND: Dict[str, Any] = dict(
    amount=8000, payment_gateway_transaction_id="pi_3PbenchABCDEF", payment_gateway="STRIPE",
    customer_email="customer@example.com", referral_code="HAVN-MJ-001", promo_code="HAVN-AQNEO-S08-ABC123",
    currency="USD", subtotal_transaction=10000,
)
ANSWER = json.dumps({
    "success": True, "message": "Transaction processed",
    "transaction": {"transaction_id": "txn_12345", "amount": 8000, "currency": "USD", "status": "completed",
                    "customer_type": "NEW_CUSTOMER", "acquisition_method": "REFERRAL_VOUCHER",
                    "subtotal_transaction": 10000, "subtotal_discount": 2000,
                    "created_at": "2025-11-21T10:00:00Z", "referral_code": "HAVN-MJ-001"},
    "commissions": [{"commission_id": f"comm_{level}", "associate_id": f"assoc_{level}", "level": level,
                     "amount": amount, "percentage": pct, "type": "REFERRAL", "direction": "UP",
                     "status": "PENDING"}
                    for level, amount, pct in ((1, 400, 5.0), (2, 240, 3.0), (3, 160, 2.0), (4, 80, 1.0),
                                               (5, 80, 1.0))],
    "total_commission": 960, "commission_distributed": True,
}).encode()


def wire_request(url: str) -> Tuple[bytes, Dict[str, str]]:
    """The body and headers our client puts on the wire for ``SEND``."""
    capture = CaptureAdapter(ANSWER)
    with HAVNClient(api_key=API_KEY, webhook_secret=SECRET, base_url=url) as client:
        client.transport.mount(url, capture)
        client.transactions.send(**SEND)
    (sent,) = capture.requests
    assert isinstance(sent.body, bytes)
    return sent.body, dict(sent.headers)


def load_sdk() -> Optional[Any]:
    """The official SDK's ``havn`` module, or ``None`` when the reference copy is not beside the project."""
    if not SDK_PATH.is_dir():
        return None
    sys.path.insert(0, str(SDK_PATH))
    try:
        return importlib.import_module("havn")
    finally:
        sys.path.remove(str(SDK_PATH))


def measure(*, number: int, rounds: int) -> Dict[str, float]:
    """Seconds per call of ``ours``, ``raw`` and (when the reference is present) ``sdk``, taking turns."""
    with fixed_answer_server(ANSWER) as url:
        body, headers = wire_request(url)
        client = HAVNClient(transport=Transport(api_key=API_KEY, webhook_secret=SECRET, base_url=url))
        raw_session = requests.Session()
        endpoint = url + "/api/v1/webhook/transaction"

        def ours() -> None:
            client.transactions.send(**SEND)

        def raw_post() -> None:
            _ = raw_session.post(endpoint, data=body, headers=headers, timeout=(30, 30)).content

        candidates = {"ours": ours, "raw": raw_post}
        havn = load_sdk()
        if havn is not None:
            sdk = havn.HAVNClient(api_key=API_KEY, webhook_secret=SECRET, base_url=url)

            def official() -> None:
                sdk.transactions.send(**SEND)

            candidates["sdk"] = official
        try:
            for fn in candidates.values():
                fn()  # warm up: connection open, caches filled
            return best_of_alternating(candidates, rounds=rounds, number=number)
        finally:
            client.transport.close()
            raw_session.close()


def run(quick: bool = False) -> Dict[str, float]:
    figures = measure(number=20, rounds=2) if quick else measure(number=300, rounds=9)
    print_figures(figures)
    return figures


def print_figures(figures: Dict[str, float]) -> None:
    """The lines of :func:`run`: ours, baseline, ratio and goal for each figure."""
    report("transactions.send", figures["ours"], figures["raw"], "raw Session.post", goal=GOAL_RAW)
    if "sdk" in figures:
        report("transactions.send", figures["ours"], figures["sdk"], "official SDK", goal=GOAL_SDK)
    else:
        print(f"transactions.send vs official SDK: skipped ({SDK_PATH} not found)")


if __name__ == "__main__":
    run("--quick" in sys.argv)

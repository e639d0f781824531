"""Exactly once at HAVN under faults: 30 % 5xx, 10 % 429, 10 % stored-then-dropped, over real HTTP."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import pytest

from flask_havn.sandbox import SandboxServer

from _projects_helpers import FAST_RETRY, UNLIMITED, allow, by_gateway_id, drain, dump, fast_sqlite, http_config, \
    states, synced_chain

FAULTS = {"seed": 20261127, "rates": {"500": 0.1, "502": 0.1, "503": 0.1, "429": 0.1, "drop": 0.1}}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    """A sandbox over real HTTP whose own rate limiter never interferes (faults inject the 429s)."""
    with SandboxServer(config={"HAVN_SANDBOX_SEED": 5, "HAVN_SANDBOX_RATE_LIMITS": UNLIMITED}) as running:
        yield running


def test_300_payments_become_exactly_300_transactions(make_host: Any, server: SandboxServer) -> None:
    server.reset()
    host = fast_sqlite(make_host(http_config(server.url, **FAST_RETRY, HAVN_DELIVERY_MAX_ATTEMPTS=60)))
    allow(host)
    _, a_code, b_id, b_code = synced_chain(host)
    server.state.faults.configure(FAULTS)

    client = host.app.test_client()
    answers = Counter()
    for n in range(300):
        response = client.post("/havn/payments", json={
            "project_id": b_id, "amount_cents": 1000 + n, "currency": "USD",
            "customer_email": f"buyer{n}@example.com", "payment_gateway": "STRIPE",
            "payment_gateway_transaction_id": f"pi_fault_{n}", "invoice_id": f"INV-{n}",
        })
        # Inline delivery under faults: the host's checkout always gets its 201, never a 500.
        assert response.status_code == 201, response.get_json()
        answers[response.get_json()["delivery_state"]] += 1
    assert answers["failed"] > 0 and answers["sent"] > 0
    assert set(answers) <= {"sent", "failed"}

    passes = drain(host, concurrency=4)
    assert passes > 1
    assert states(host) == Counter({"sent": 300})

    stats = server.state.faults.stats()
    for kind in ("500", "502", "503", "429", "drop"):
        assert stats.get(kind, 0) > 0, stats  # every fault kind really happened
    server.state.faults.clear()

    state = dump(server)
    transactions = [t for t in state["transactions"] if t["payment_gateway_transaction_id"].startswith("pi_fault_")]
    grouped = by_gateway_id(transactions)
    assert len(transactions) == 300
    assert sorted(grouped) == sorted(f"pi_fault_{n}" for n in range(300))
    assert all(len(rows) == 1 for rows in grouped.values())
    # Every one carries the upline's code (A's), never B's own.
    assert {t["referral_code"] for t in transactions} == {a_code}
    assert b_code not in {t["referral_code"] for t in transactions}
    # One level-1 commission per transaction, no duplicates, 5 % each.
    txn_ids = {t["transaction_id"]: t for t in transactions}
    commissions = [c for c in state["commissions"] if c["transaction_id"] in txn_ids]
    assert len(commissions) == 300
    assert Counter(c["transaction_id"] for c in commissions).most_common(1)[0][1] == 1
    assert all(c["referral_code"] == a_code and c["level"] == 1 for c in commissions)
    assert all(c["amount"] == txn_ids[c["transaction_id"]]["amount"] * 5 // 100 for c in commissions)

    # The local rows agree with HAVN.
    with host.app.app_context():
        Payment = host.havn.models.Payment
        rows = Payment.query.all()
        assert {r.payment_gateway_transaction_id: r.havn_transaction_id for r in rows} == \
            {t["payment_gateway_transaction_id"]: t["transaction_id"] for t in transactions}
        assert max(r.attempts for r in rows) > 1
        assert all(r.total_commission == r.amount * 5 // 100 for r in rows)

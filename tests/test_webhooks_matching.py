"""find_payment's one-query lookup gives exactly what the plain rule gives, key by key, on every database.

The plain rule (webhook-events.md): the gateway id, else an invoice exactly one
payment carries, else a HAVN transaction id exactly one payment carries; a
test-mode event only among test-mode payments. Compared here over every small
arrangement of payments sharing invoices and transaction ids, including those
that fill the lookup's three-row window with an ambiguous key.
"""
from __future__ import annotations

import itertools
import random
from typing import Any, Dict, List, Optional

import sqlalchemy as sa

from flask_havn.events import find_payment

from _webhook_helpers import config

INVOICES = ["INV-A", "INV-B", None]
TRANSACTIONS = ["txn_a", "txn_b", None]


def _plain_rule(rows: List[Dict[str, Any]], transaction: Dict[str, Any], test_mode: bool) -> Optional[int]:
    """The rule as written, over the rows in memory."""
    scope = [row for row in rows if row["test_mode"] or not test_mode]
    for key, column in (("payment_gateway_transaction_id", "payment_gateway_transaction_id"),
                        ("invoice_id", "invoice_id"), ("transaction_id", "havn_transaction_id")):
        value = transaction.get(key)
        if value is None:
            continue
        found = [row["id"] for row in scope if row[column] == value]
        if len(found) == 1:
            return found[0]
    return None


def _lookups() -> List[Dict[str, Any]]:
    gateway_ids = [None, "pi_0", "pi_3", "pi_missing"]
    return [{k: v for k, v in (("payment_gateway_transaction_id", gw), ("invoice_id", inv),
                                ("transaction_id", txn)) if v is not None}
            for gw, inv, txn in itertools.product(gateway_ids, INVOICES + ["INV-missing"],
                                                  TRANSACTIONS + ["txn_missing"])]


def test_the_one_query_lookup_agrees_with_the_plain_rule(make_host: Any, database: Any) -> None:
    host = make_host(config(), database=database)
    shuffle = random.Random(20261202)
    with host.app.app_context():
        session, Payment, Project = host.db.session, host.havn.models.Payment, host.havn.models.Project
        project = Project(name="Acme")
        session.add(project)
        session.flush()
        checked = decided = 0
        for arrangement in range(40):
            session.execute(sa.delete(Payment))
            rows = []
            for n in range(shuffle.randint(1, 7)):
                row = {"payment_gateway_transaction_id": f"pi_{n}", "invoice_id": shuffle.choice(INVOICES),
                       "havn_transaction_id": shuffle.choice(TRANSACTIONS), "test_mode": shuffle.random() < 0.3}
                payment = Payment(project_id=project.id, amount=100, currency="USD", status="completed",
                                  payment_gateway="STRIPE", delivery_state="sent", **row)
                session.add(payment)
                session.flush()
                rows.append({**row, "id": payment.id})
            for transaction, test_mode in itertools.product(_lookups(), (False, True)):
                expected = _plain_rule(rows, transaction, test_mode)
                found = find_payment(session, Payment, {"transaction": transaction}, test_mode=test_mode)
                assert (found.id if found is not None else None) == expected, (rows, transaction, test_mode)
                checked += 1
                decided += expected is not None
        session.rollback()
    assert checked == 40 * len(_lookups()) * 2
    assert 0 < decided < checked  # both outcomes were exercised


def test_an_ambiguous_invoice_filling_the_window_still_finds_the_transaction_id(make_host: Any,
                                                                              database: Any) -> None:
    host = make_host(config(), database=database)
    with host.app.app_context():
        session, Payment, Project = host.db.session, host.havn.models.Payment, host.havn.models.Project
        project = Project(name="Acme")
        session.add(project)
        session.flush()
        ids = []
        for n in range(5):
            payment = Payment(project_id=project.id, amount=100, currency="USD", status="completed",
                              payment_gateway="STRIPE", payment_gateway_transaction_id=f"pi_{n}",
                              invoice_id="INV-shared", havn_transaction_id="txn_only" if n == 4 else None)
            session.add(payment)
            session.flush()
            ids.append(payment.id)
        found = find_payment(session, Payment, {"transaction": {"invoice_id": "INV-shared",
                                                                "transaction_id": "txn_only"}})
        assert found is not None and found.id == ids[4]
        assert find_payment(session, Payment, {"transaction": {"invoice_id": "INV-shared"}}) is None
        session.rollback()

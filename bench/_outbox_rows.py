"""Rows the benchmarks start from: one synced project and many completed payments, inserted in bulk."""
from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa

from flask_havn.models import utcnow

_PAYMENT = sa.text(
    "INSERT INTO havn_payments (project_id, amount, currency, status, customer_email, payment_gateway, "
    "payment_gateway_transaction_id, invoice_id, delivery_state, attempts, test_mode, created_at, updated_at) "
    "VALUES (1, :amount, 'USD', 'completed', 'c@example.com', 'STRIPE', :gw, :invoice, :state, 0, :false, :now, :now)")


def add_project(session: Any) -> None:
    """The project every benchmark payment belongs to (id 1)."""
    session.execute(sa.text("INSERT INTO havn_projects (name, sync_state, created_at, updated_at) "
                            "VALUES ('bench', 'synced', :now, :now)"), {"now": utcnow()})


def add_payments(session: Any, gateway_ids: Iterable[str], *, state: str = "pending", amount: int = 100,
                 invoices: bool = False) -> None:
    """Completed payments of project 1, one per gateway id (invoice ``INV-<n>`` when ``invoices``)."""
    now = utcnow()
    session.execute(_PAYMENT, [{"amount": amount, "gw": gw, "invoice": f"INV-{n}" if invoices else None,
                                "state": state, "false": False, "now": now}
                               for n, gw in enumerate(gateway_ids)])

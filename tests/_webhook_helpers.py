"""Shared helpers of the webhook receiver tests: host config, rows, signed posts."""
from __future__ import annotations

from typing import Any, Dict, Optional

import sqlalchemy as sa

from flask_havn.webhook_testing import sign_webhook

SECRET = "test-webhook-secret-1"
OLD_SECRET = "test-webhook-secret-0"
#: A real (non-sandbox) host: the receiver checks HAVN_WEBHOOK_SECRET.
CONFIG: Dict[str, Any] = {
    "HAVN_SANDBOX": False,
    "HAVN_API_KEY": "test-api-key",
    "HAVN_WEBHOOK_SECRET": SECRET,
    "HAVN_DELIVERY": "worker",
}
PATH = "/havn/webhooks"


def config(**extra: Any) -> Dict[str, Any]:
    """CONFIG with ``extra`` keys on top."""
    return {**CONFIG, **extra}


def add_payment(host: Any, **fields: Any) -> int:
    """Insert a project and one payment of it; return the payment's id."""
    with host.app.app_context():
        models = host.havn.models
        session = host.db.session
        project = models.Project(name="Acme", upline_referral_code="HAVN-MJ-001")
        session.add(project)
        session.flush()
        values: Dict[str, Any] = {
            "project_id": project.id, "amount": 100000, "currency": "USD", "status": "completed",
            "payment_gateway": "STRIPE", "payment_gateway_transaction_id": "pi_local_1",
            "invoice_id": "INV-1", "delivery_state": "pending",
        }
        values.update(fields)
        payment = models.Payment(**values)
        session.add(payment)
        session.commit()
        return payment.id


def payment_row(host: Any, payment_id: int) -> Dict[str, Any]:
    """The payment's columns as a dict (read in a fresh app context)."""
    with host.app.app_context():
        model = host.havn.models.Payment
        row = host.db.session.get(model, payment_id)
        return {c.name: getattr(row, c.name) for c in model.__table__.columns}


def event_rows(host: Any) -> Dict[str, Dict[str, Any]]:
    """Every stored webhook event, by id, as dicts."""
    with host.app.app_context():
        model = host.havn.models.WebhookEvent
        rows = host.db.session.execute(sa.select(model)).scalars().all()
        return {row.id: {c.name: getattr(row, c.name) for c in model.__table__.columns} for row in rows}


def envelope(event_type: str = "commission.distributed", event_id: str = "evt_000000000000000000000001",
             data: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A minimal valid envelope (``data`` defaults to a commission of a transaction naming ``pi_local_1``)."""
    if data is None:
        data = {
            "transaction": {"transaction_id": "txn_abc", "amount": 100000, "currency": "USD",
                            "status": "completed", "invoice_id": "INV-1",
                            "payment_gateway_transaction_id": "pi_local_1", "referral_code": "HAVN-MJ-001"},
            "commissions": [
                {"commission_id": "com_1", "associate_id": "asc_7", "referral_code": "HAVN-MJ-001", "level": 1,
                 "amount": 5000, "percentage": 5.0, "type": "REFERRAL", "direction": "UP", "status": "PENDING"},
                {"commission_id": "com_2", "associate_id": "asc_3", "referral_code": "HAVN-AB-001", "level": 2,
                 "amount": 3000, "percentage": 3.0, "type": "REFERRAL", "direction": "UP", "status": "PENDING"},
            ],
            "total_commission": 8000,
        }
    return {"id": event_id, "type": event_type, "created_at": "2026-11-27T10:15:30Z", "test_mode": False,
            "data": data}


def post(client: Any, payload: Any, secret: Any = SECRET, *, msg_id: Optional[str] = None,
         timestamp: Optional[int] = None, path: str = PATH) -> Any:
    """Sign ``payload`` with ``secret`` and POST it to the endpoint."""
    body, headers = sign_webhook(payload, secret, msg_id=msg_id, timestamp=timestamp)
    return client.post(path, data=body, headers=headers)

"""Delivery sends each payment with the test-mode mark it was recorded with, not the app's setting of the day."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def _sandbox_transactions(host: Any) -> list:
    sandbox = host.app.extensions["havn"].sandbox_app.extensions["havn_sandbox"]
    return [row["payment_gateway_transaction_id"] for row in sandbox.backend.dump()["transactions"]]


def _mark(host: Any, payment_id: int, test_mode: bool) -> None:
    with host.app.app_context():
        Payment = host.havn.models.Payment
        host.db.session.execute(sa.update(Payment).where(Payment.id == payment_id).values(test_mode=test_mode))
        host.db.session.commit()


def test_each_payment_is_sent_with_its_own_mark(make_host: Any) -> None:
    """A live app sends its test-mode leftovers as test data (the sandbox keeps none of them: test-mode
    calls change nothing there), and an app in test mode sends a live payment live."""
    for app_test_mode in (False, True):
        host = make_host({"HAVN_TEST_MODE": app_test_mode, "HAVN_DELIVERY": "worker",
                          "HAVN_SANDBOX_WEBHOOK_URL": None})
        with host.app.app_context():
            project = host.havn.create_project("Shop")
            live = host.havn.record_payment(project, 2500, customer_email="a@example.com",
                                            payment_gateway_transaction_id=f"pi_live_{app_test_mode}").id
            test = host.havn.record_payment(project, 2500, customer_email="b@example.com",
                                            payment_gateway_transaction_id=f"pi_test_{app_test_mode}").id
        _mark(host, live, False)
        _mark(host, test, True)
        with host.app.app_context():
            counts = host.havn.outbox.deliver_due()
        assert counts["sent"] == 2
        assert _sandbox_transactions(host) == [f"pi_live_{app_test_mode}"]

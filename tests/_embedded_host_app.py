"""A client-only host app on the embedded sandbox, its instance folder from ``HOST_INSTANCE_PATH``.

Used by tests/test_sandbox_embedded.py as a second process sharing the sandbox's state file.
"""
from __future__ import annotations

import os
import sys

from flask import Flask

from flask_havn import HAVN


def create_app() -> Flask:
    app = Flask(__name__, instance_path=os.environ["HOST_INSTANCE_PATH"])
    app.config.update(HAVN_SANDBOX=True, HAVN_MAX_RETRIES=0)
    HAVN(app)
    return app


def send_many(referral_code: str, prefix: str, count: int) -> None:
    """Send ``count`` transactions (gateway ids ``prefix-N``) through the embedded sandbox."""
    app = create_app()
    with app.app_context():
        client = app.extensions["havn"].make_client()
        for n in range(count):
            client.transactions.send(1000 + n, referral_code=referral_code, customer_email=f"c{n}@example.com",
                                     payment_gateway_transaction_id=f"{prefix}-{n}", payment_gateway="STRIPE")
    app.extensions["havn"].close()


if __name__ == "__main__":
    send_many(sys.argv[1], sys.argv[2], int(sys.argv[3]))

"""Smoke test of the INSTALLED wheel: run by .ci/package.sh from a temp dir, in a clean venv, with ``python -I``.

It uses only the public API a host uses, so anything the wheel forgot to ship
(a module, ``py.typed``, an entry point, a sandbox file) fails here: import
flask_havn from site-packages, ``HAVN(app, db=db)`` with the embedded sandbox on
SQLite in a temp dir, create a project, sync its owner, refer a second project,
record one payment and check HAVN (the sandbox) took it and paid the referrer.
"""
from __future__ import annotations

import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import List


def check_install() -> Path:
    """The package comes from site-packages, with its type marker and its pytest plugin; its folder."""
    import flask_havn

    package = Path(flask_havn.__file__).resolve().parent
    assert "site-packages" in package.parts, f"flask_havn imported from {package}, not from the installed wheel"
    assert (package / "py.typed").is_file(), "py.typed is missing from the wheel"
    assert metadata.version("flask-havn") == flask_havn.__version__, "wheel metadata and __version__ differ"
    plugins = {ep.name: ep.value for ep in metadata.distribution("flask-havn").entry_points if ep.group == "pytest11"}
    assert plugins == {"havn": "flask_havn.testing"}, f"pytest11 entry point: {plugins}"
    for name in flask_havn.__all__:
        assert getattr(flask_havn, name) is not None, name
    return package


def pay_through_the_sandbox(folder: str) -> List[str]:
    """The four steps of HAVN's guide against the embedded sandbox; lines to print."""
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_havn import HAVN

    app = Flask("wheel_smoke")
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder}/smoke.sqlite", HAVN_SANDBOX=True)
    db = SQLAlchemy(app)
    havn = HAVN(app, db=db)
    try:
        with app.app_context():
            db.create_all()
            acme = havn.create_project("Acme")
            havn.sync_owner(acme, email="ada@acme.test", name="Ada Lee")
            assert acme.sync_state == "synced" and acme.referral_code, acme
            bolt = havn.create_project("Bolt", upline_referral_code=acme.referral_code)
            havn.sync_owner(bolt, email="bo@bolt.test", name="Bo")
            payment = havn.record_payment(bolt, 10000, "USD", customer_email="c@example.com",
                                          payment_gateway="STRIPE", payment_gateway_transaction_id="pi_wheel_smoke")
            assert payment.delivery_state == "sent", (payment.delivery_state, payment.last_error)
            assert payment.havn_transaction_id, "no HAVN transaction id"
            level_one = [c for c in payment.commissions or [] if c.get("level") == 1]
            assert [c.get("amount") for c in level_one] == [500], payment.commissions  # 5 % of 100.00 USD
            return [f"project {acme.name} synced with referral code {acme.referral_code}",
                    f"payment {payment.id} of {bolt.name}: {payment.delivery_state}, HAVN transaction "
                    f"{payment.havn_transaction_id}, level 1 earned {level_one[0]['amount']} cents"]
    finally:
        app.extensions["havn"].close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def main() -> int:
    """Run the checks; 0 when the wheel works."""
    package = check_install()
    with tempfile.TemporaryDirectory() as folder:
        lines = pay_through_the_sandbox(folder)
    print(f"wheel smoke: flask_havn from {package}")
    for line in lines:
        print(f"wheel smoke: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

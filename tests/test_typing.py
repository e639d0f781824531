"""A host's type checker sees flask_havn: mypy finds the installed package and the services' row types.

mypy runs in a folder outside the checkout, so it can only find flask_havn the
way a host's mypy would: through the installed package. With setuptools'
default editable install (an import hook) it cannot; the Makefile installs in
``compat`` mode, whose ``.pth`` file holds a plain path mypy follows.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (it comes with the test extra: pip install -e '.[test]')")

HOST = textwrap.dedent('''\
    from typing import List, Optional

    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_havn import HAVN
    from flask_havn.payments import Recorded
    from flask_havn.rows import PaymentRow, ProjectRow

    db = SQLAlchemy()
    havn = HAVN()
    app = Flask(__name__)
    havn.init_app(app, db=db)

    with app.app_context():
        acme: ProjectRow = havn.projects.create("Acme")
        code: Optional[str] = havn.projects.sync_owner(acme, email="ada@acme.test", name="Ada").referral_code
        payment = havn.payments.record(acme, 10000, "USD", customer_email="c@example.com")
        sent: bool = payment.delivery_state == "sent" and payment.project.name == "Acme"
        recorded: Recorded = havn.payments.record_or_get(acme, 500, customer_email="c@example.com")
        cents: int = recorded.payment.amount
        rows, total = havn.payments.list(delivery_state="sent")
        first: List[PaymentRow] = rows
        downline: List[ProjectRow] = havn.downline_projects(acme)
        again: PaymentRow = havn.outbox.deliver(payment.id)
        old_name: PaymentRow = havn.retry_payment(payment)
        print(payment.delivery_stat)
''')


def _mypy(folder: Path, cache: Path) -> List[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("MYPYPATH", "PYTHONPATH")}
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(cache), "host.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stderr  # 2: mypy itself failed
    return [line for line in run.stdout.splitlines() if ": error:" in line]


def test_mypy_on_a_host_app_flags_a_misspelt_payment_column(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    tmp_path.joinpath("host.py").write_text(HOST, encoding="utf-8")
    cache = getattr(pytestconfig, "cache", None)  # None under -p no:cacheprovider
    errors = _mypy(tmp_path, cache.mkdir("mypy") if cache else tmp_path / ".mypy_cache")  # kept: 1 s, not 15
    if any("import-not-found" in line and "flask_havn" in line for line in errors):
        pytest.fail("mypy cannot find flask_havn outside the checkout: reinstall it the way the Makefile does, "
                    "pip install --config-settings editable_mode=compat -e '.[test]' (the default editable "
                    "mode is an import hook mypy does not run)\n" + "\n".join(errors))
    # Exactly one error: the typo. Everything else the services return is typed as the host uses it.
    assert len(errors) == 1, "\n".join(errors)
    assert 'host.py:27: error: "PaymentRow" has no attribute "delivery_stat"; maybe "delivery_state"?' in errors[0]

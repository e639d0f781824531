"""The embedded sandbox keeps HAVN's state in the host's instance folder (sandbox/embedded.py, store.py):
across restarts, and shared by the web process and `flask havn …` commands."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, List

import pytest
from flask import Flask

from flask_havn import HAVN
from flask_havn.errors import HAVNError
from flask_havn.sandbox.embedded import DATABASE_FILE
from flask_havn.sandbox.state import get_state

TESTS = Path(__file__).parent


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Any]:
    """Client-only hosts on the embedded sandbox, all with one instance folder (restarts of one app)."""
    apps: List[Flask] = []

    def build(**config: Any) -> Flask:
        app = Flask(f"restart{len(apps)}", instance_path=str(tmp_path / "instance"))
        app.config.update(HAVN_SANDBOX=True, HAVN_MAX_RETRIES=0, **config)
        HAVN(app)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["havn"].close()


def sandbox(app: Flask) -> Any:
    return get_state(app.extensions["havn"].sandbox_app)


def pay(app: Flask, referral_code: str, gateway_id: str) -> Any:
    with app.app_context():
        client = app.extensions["havn"].make_client()
        return client.transactions.send(10000, referral_code=referral_code, customer_email="c@example.com",
                                        payment_gateway_transaction_id=gateway_id, payment_gateway="STRIPE")


def test_the_state_lives_in_the_instance_folder_and_survives_a_restart(embedded: Any, tmp_path: Path) -> None:
    first = embedded()
    database = tmp_path / "instance" / DATABASE_FILE
    assert sandbox(first).settings.database_uri == f"sqlite:///{database}"
    assert database.is_file()
    with first.app_context():
        owner = first.extensions["havn"].make_client().users.sync(email="ada@example.com", name="Ada Lee",
                                                                  is_owner=True)
    assert pay(first, owner.referral_code, "pi_1").transaction.status == "completed"
    sandbox(first).backend.set_rates({"IDR": "0.00007"})
    first.extensions["havn"].close()

    again = embedded()  # `make demo` started again
    later = pay(again, owner.referral_code, "pi_2")  # used to be "… is not a known referral code"
    assert later.transaction.status == "completed" and [c.amount for c in later.commissions] == [500]
    assert pay(again, owner.referral_code, "pi_1").transaction.transaction_id == \
        sandbox(again).backend.dump()["transactions"][0]["transaction_id"]  # a replay, not a new one
    dump = sandbox(again).backend.dump()
    assert dump["counts"]["transactions"] == 2 and dump["counts"]["users"] == 1
    assert sandbox(again).backend.rates["IDR"] == Decimal("0.00007")


def test_memory_keeps_nothing_and_writes_no_file(embedded: Any, tmp_path: Path) -> None:
    first = embedded(HAVN_SANDBOX_DATABASE_URI="sqlite://")
    with first.app_context():
        code = first.extensions["havn"].make_client().users.sync(email="a@example.com", name="Ada Lee").referral_code
    assert not (tmp_path / "instance" / DATABASE_FILE).exists()
    again = embedded(HAVN_SANDBOX_DATABASE_URI="sqlite://")
    with pytest.raises(HAVNError, match="not a known referral code"):
        pay(again, code, "pi_1")


def test_flask_havn_sandbox_reset_empties_the_embedded_state(embedded: Any) -> None:
    web = embedded()
    with web.app_context():
        code = web.extensions["havn"].make_client().users.sync(email="a@example.com", name="Ada Lee").referral_code
    sandbox(web).backend.set_rates({"IDR": "0.00007"})
    command = embedded()  # the command's own app, on the same file
    result = command.test_cli_runner().invoke(args=["havn", "sandbox", "reset"])
    assert result.exit_code == 0, result.output
    assert "empty now" in result.output and DATABASE_FILE in result.output
    counts = sandbox(web).backend.dump()["counts"]  # the web process sees the reset at once
    assert counts == {key: 0 for key in counts}
    assert sandbox(web).backend.rates["IDR"] == Decimal("0.0000633")
    with pytest.raises(HAVNError, match="not a known referral code"):
        pay(web, code, "pi_after_reset")


def test_sandbox_reset_without_an_embedded_sandbox_says_what_to_do(tmp_path: Path) -> None:
    app = Flask("real_havn", instance_path=str(tmp_path))
    app.config.update(HAVN_API_KEY="k", HAVN_WEBHOOK_SECRET="s")
    HAVN(app)
    result = app.test_cli_runner().invoke(args=["havn", "sandbox", "reset"])
    assert result.exit_code == 2 and "HAVN_SANDBOX is off" in result.output and "--database" in result.output
    store = tmp_path / "standalone.sqlite"
    from flask_havn.sandbox.app import create_app

    standalone = create_app({"HAVN_SANDBOX_DATABASE_URI": f"sqlite:///{store}"})
    try:
        get_state(standalone).backend.seed({"associates": [{"name": "Ada Lee"}]})
        result = app.test_cli_runner().invoke(args=["havn", "sandbox", "reset", "--database", f"sqlite:///{store}"])
        assert result.exit_code == 0, result.output
        assert get_state(standalone).backend.dump()["counts"]["associates"] == 0
    finally:
        get_state(standalone).close()


def test_two_processes_write_to_one_state_file(embedded: Any, tmp_path: Path) -> None:
    """The demo's web process and a `flask havn …` command embed the same sandbox at the same time."""
    web = embedded()
    with web.app_context():
        code = web.extensions["havn"].make_client().users.sync(email="a@example.com", name="Ada Lee").referral_code
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAVN_")}
    env.update(HOST_INSTANCE_PATH=str(tmp_path / "instance"), PYTHONPATH=str(TESTS))
    count = 40
    other = subprocess.Popen([sys.executable, str(TESTS / "_embedded_host_app.py"), code, "cli", str(count)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    errors: List[BaseException] = []

    def web_payments(worker: int) -> None:
        try:
            for n in range(count // 2):
                pay(web, code, f"web{worker}-{n}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=web_payments, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    output, _ = other.communicate(timeout=120)
    assert other.returncode == 0, output
    assert errors == []
    transactions = sandbox(web).backend.dump()["transactions"]
    assert len(transactions) == 2 * count
    assert len({t["transaction_id"] for t in transactions}) == 2 * count
    assert {t["payment_gateway_transaction_id"] for t in transactions} == (
        {f"cli-{n}" for n in range(count)} | {f"web{w}-{n}" for w in range(2) for n in range(count // 2)})

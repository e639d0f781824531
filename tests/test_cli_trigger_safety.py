"""`flask havn trigger` never damages real data: its events are test-mode events, a live payment is
refused unless --force (which lists what will change), on SQLite and PostgreSQL."""
from __future__ import annotations


from typing import Any, Dict

import pytest

from flask_havn.sandbox import SandboxServer

from _webhook_helpers import add_payment, config, event_rows, payment_row

#: A live payment HAVN already has: sent, with its real commissions.
SENT: Dict[str, Any] = {
    "delivery_state": "sent", "havn_transaction_id": "txn_real_20", "total_commission": 900,
    "commissions": [{"commission_id": "com_real", "referral_code": "HAVN-MJ-001", "level": 1, "amount": 900}],
}


@pytest.fixture
def host(make_host: Any, database: Any) -> Any:
    return make_host(config(), database=database)


def _run(host: Any, *args: str) -> Any:
    # result.output holds stdout and stderr on every Click (8.1, Python 3.9's, has no result.stderr by default).
    return host.app.test_cli_runner().invoke(args=["havn", "trigger", *args])


@pytest.mark.parametrize("event_type,ref,changes", [
    ("commission.distributed", "id", ["commissions: 1 entry replaced by 2 entries invented ones",
                                      "total_commission: 900 -> 8000"]),
    ("transaction.conversion_failed", "gateway", ["delivery_state: 'sent' -> 'conversion_failed'",
                                                  "conversion_verdict: None -> 'failed'"]),
])
def test_a_live_payment_is_refused_and_left_alone(host: Any, event_type: str, ref: str, changes: Any) -> None:
    payment_id = add_payment(host, **SENT)
    before = payment_row(host, payment_id)
    result = _run(host, event_type, "--payment", str(payment_id) if ref == "id" else "pi_local_1")
    assert result.exit_code == 1, result.output
    assert f"payment {payment_id} (pi_local_1, delivery_state sent) is live data" in result.output
    for change in changes:
        assert change in result.output
    assert "--force" in result.output and "HAVN_TEST_MODE" in result.output
    assert payment_row(host, payment_id) == before
    assert event_rows(host) == {}


def test_the_test_mode_flag_does_not_open_a_live_payment(host: Any) -> None:
    payment_id = add_payment(host, **SENT)
    before = payment_row(host, payment_id)
    result = _run(host, "commission.distributed", "--payment", str(payment_id), "--test-mode")
    assert result.exit_code == 1 and "is live data" in result.output
    assert payment_row(host, payment_id) == before and event_rows(host) == {}


def test_over_http_a_live_payment_is_refused_too(host: Any) -> None:
    payment_id = add_payment(host, **SENT)
    before = payment_row(host, payment_id)
    with SandboxServer(host.app) as live:
        result = _run(host, "transaction.conversion_failed", "--payment", str(payment_id),
                      "--url", live.url + "/havn/webhooks")
    assert result.exit_code == 1 and "is live data" in result.output
    assert payment_row(host, payment_id) == before and event_rows(host) == {}


def test_force_warns_what_changes_then_sends_a_live_event(host: Any) -> None:
    payment_id = add_payment(host, **SENT)
    result = _run(host, "transaction.conversion_failed", "--payment", str(payment_id), "--force")
    assert result.exit_code == 0, result.output
    assert (f"Warning: --force: payment {payment_id} (pi_local_1, delivery_state sent) is live data"
            in result.output)
    assert "delivery_state: 'sent' -> 'conversion_failed'" in result.output
    assert "(LIVE) -> POST /havn/webhooks: 200" in result.output
    assert payment_row(host, payment_id)["delivery_state"] == "conversion_failed"
    (stored,) = event_rows(host).values()
    assert (stored["status"], stored["test_mode"], stored["payment_id"]) == ("processed", False, payment_id)


@pytest.mark.parametrize("event_type,state", [("commission.distributed", "sent"),
                                              ("transaction.conversion_failed", "conversion_failed")])
def test_a_test_mode_payment_takes_the_event_without_force(host: Any, event_type: str, state: str) -> None:
    payment_id = add_payment(host, test_mode=True, **SENT)
    result = _run(host, event_type, "--payment", str(payment_id))
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
    assert payment_row(host, payment_id)["delivery_state"] == state
    (stored,) = event_rows(host).values()
    assert (stored["test_mode"], stored["payment_id"]) == (True, payment_id)


def test_an_unmatched_trigger_is_a_test_mode_event_that_changes_nothing(host: Any) -> None:
    payment_id = add_payment(host, **SENT)
    before = payment_row(host, payment_id)
    result = _run(host, "commission.distributed")
    assert result.exit_code == 0, result.output
    (stored,) = event_rows(host).values()
    assert (stored["test_mode"], stored["payment_id"]) == (True, None)
    assert payment_row(host, payment_id) == before


def test_a_payment_recorded_in_test_mode_through_the_sandbox_can_be_triggered(make_host: Any,
                                                                               database: Any) -> None:
    host = make_host({"HAVN_TEST_MODE": True, "HAVN_SANDBOX_WEBHOOK_URL": None}, database=database)
    with host.app.app_context():
        project = host.havn.create_project("Test shop")
        payment_id = host.havn.record_payment(project, 2500, customer_email="t@example.com").id
    result = _run(host, "commission.distributed", "--payment", str(payment_id))
    assert result.exit_code == 0, result.output
    row = payment_row(host, payment_id)
    assert (row["test_mode"], row["delivery_state"], row["total_commission"]) == (True, "sent", 200)

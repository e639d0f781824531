"""`flask havn trigger`, `flask havn webhooks` and `flask havn webhooks replay`, through the CLI runner."""
from __future__ import annotations

from typing import Any, List

import pytest
from flask import Flask

from flask_havn import signals
from flask_havn.sandbox import SandboxServer
from flask_havn.webhook_testing import record_signals

from _webhook_helpers import add_payment, config, envelope, event_rows, payment_row, post


@pytest.fixture
def host(make_host: Any) -> Any:
    return make_host(config())


def _run(host: Any, *args: str) -> Any:
    return host.app.test_cli_runner().invoke(args=["havn", *args])


def test_trigger_commission_for_a_payment_in_process(host: Any) -> None:
    payment_id = add_payment(host, test_mode=True)
    with record_signals(signals.commission_distributed) as sent:
        result = _run(host, "trigger", "commission.distributed", "--payment", str(payment_id))
    assert result.exit_code == 0, result.output
    assert "commission.distributed evt_" in result.output
    assert "(test-mode) -> POST /havn/webhooks: 200" in result.output
    row = payment_row(host, payment_id)
    assert row["delivery_state"] == "sent"
    assert row["total_commission"] == 8000  # 5 % + 3 % of 100000 cents
    assert [s.kwargs["payment"].id for s in sent] == [payment_id]
    (stored,) = event_rows(host).values()
    assert (stored["status"], stored["payment_id"]) == ("processed", payment_id)


def test_trigger_conversion_failed_by_gateway_id(host: Any) -> None:
    payment_id = add_payment(host, currency="IDR", amount=150000, payment_gateway_transaction_id="mt_5521",
                             test_mode=True)
    result = _run(host, "trigger", "transaction.conversion_failed", "--payment", "mt_5521")
    assert result.exit_code == 0, result.output
    row = payment_row(host, payment_id)
    assert row["delivery_state"] == "conversion_failed"
    assert row["havn_details"]["original_amount"] == 150000
    assert row["havn_details"]["original_currency"] == "IDR"


def test_trigger_without_payment_sends_an_unmatched_event(host: Any) -> None:
    result = _run(host, "trigger", "commission.distributed", "--test-mode")
    assert result.exit_code == 0, result.output
    (stored,) = event_rows(host).values()
    assert (stored["status"], stored["payment_id"], stored["test_mode"]) == ("processed", None, True)


def test_trigger_refuses_unknown_types_and_payments(host: Any) -> None:
    bad_type = _run(host, "trigger", "commission.reversed")
    assert bad_type.exit_code == 2
    missing = _run(host, "trigger", "commission.distributed", "--payment", "999")
    assert missing.exit_code == 1
    assert "no payment has the id" in missing.output
    assert event_rows(host) == {}


def test_trigger_over_http_to_a_live_app(host: Any) -> None:
    payment_id = add_payment(host, test_mode=True)
    with SandboxServer(host.app) as live:
        url = live.url + "/havn/webhooks"
        result = _run(host, "trigger", "commission.distributed", "--payment", str(payment_id), "--url", url)
    assert result.exit_code == 0, result.output
    assert f"POST {url}: 200" in result.output
    assert payment_row(host, payment_id)["delivery_state"] == "sent"


def test_trigger_reports_a_non_2xx_answer_and_exits_1(host: Any, make_host: Any) -> None:
    other = make_host(config(HAVN_WEBHOOK_SECRET="a-different-secret"))
    with SandboxServer(other.app) as live:
        result = _run(host, "trigger", "commission.distributed", "--url", live.url + "/havn/webhooks")
    assert result.exit_code == 1
    assert ": 401" in result.output
    assert event_rows(other) == {}


def test_trigger_reports_an_unreachable_url(host: Any) -> None:
    result = _run(host, "trigger", "commission.distributed", "--url", "http://127.0.0.1:9/havn/webhooks")
    assert result.exit_code == 1
    assert "could not reach" in result.output


def _seed(host: Any) -> None:
    client = host.app.test_client()
    post(client, envelope(event_id="evt_ok"))
    post(client, envelope("x.unknown", event_id="evt_ignored", data={}))

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver down")

    signals.webhook_received.connect(broken, weak=False)
    try:
        assert post(client, envelope(event_id="evt_failed")).status_code == 500
    finally:
        signals.webhook_received.disconnect(broken)


def test_webhooks_lists_stored_events(host: Any) -> None:
    _seed(host)
    result = _run(host, "webhooks")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3
    by_id = {line.split()[0]: line for line in lines}
    assert "commission.distributed  processed  attempts=1" in by_id["evt_ok"]
    assert "x.unknown  ignored" in by_id["evt_ignored"]
    assert "failed  attempts=1  received=20" in by_id["evt_failed"]


def test_webhooks_status_filter_and_limit(host: Any) -> None:
    _seed(host)
    failed = _run(host, "webhooks", "--status", "failed")
    assert [line.split()[0] for line in failed.output.strip().splitlines()] == ["evt_failed"]
    assert len(_run(host, "webhooks", "--limit", "1").output.strip().splitlines()) == 1
    none = _run(host, "webhooks", "--status", "received")
    assert none.output.strip() == "No HAVN webhook events stored with status received."
    assert _run(host, "webhooks", "--status", "bogus").exit_code == 2


def test_webhooks_replay_processes_again_and_sends_signals_again(host: Any) -> None:
    _seed(host)
    with record_signals(signals.webhook_received) as sent:
        result = _run(host, "webhooks", "replay", "evt_failed")
        again = _run(host, "webhooks", "replay", "evt_ok")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "evt_failed: processed"
    assert again.output.strip() == "evt_ok: processed"
    assert [s.kwargs["event"].id for s in sent] == ["evt_failed", "evt_ok"]
    rows = event_rows(host)
    assert (rows["evt_failed"]["status"], rows["evt_failed"]["attempts"]) == ("processed", 2)
    assert rows["evt_ok"]["attempts"] == 2


def test_webhooks_replay_failing_again_exits_1(host: Any) -> None:
    _seed(host)
    calls: List[str] = []

    def broken(sender: Any, event: Any) -> None:
        calls.append(event.id)
        raise RuntimeError("still down")

    signals.webhook_received.connect(broken, weak=False)
    try:
        result = _run(host, "webhooks", "replay", "evt_failed")
    finally:
        signals.webhook_received.disconnect(broken)
    assert result.exit_code == 1
    assert "RuntimeError: still down" in result.output
    assert calls == ["evt_failed"]
    assert event_rows(host)["evt_failed"]["status"] == "failed"


def test_webhooks_replay_unknown_id(host: Any) -> None:
    result = _run(host, "webhooks", "replay", "evt_nope")
    assert result.exit_code == 1
    assert "no stored HAVN event has the id 'evt_nope'" in result.output


def test_commands_degrade_without_the_extension() -> None:
    from flask_havn.cli import havn_cli

    app = Flask("bare")
    app.cli.add_command(havn_cli)
    runner = app.test_cli_runner()
    for args in (["havn", "webhooks"], ["havn", "trigger", "commission.distributed"],
                 ["havn", "webhooks", "replay", "evt_x"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1, args
        assert "not registered with the HAVN extension" in result.output


def test_webhooks_on_a_client_only_app(make_host: Any) -> None:
    host = make_host(config(), with_db=False)
    result = _run(host, "webhooks")
    assert result.exit_code == 1
    assert "no HAVN webhook endpoint" in result.output

"""Sandbox backend: seed(), set_rates(), build_event() and dump()."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Dict, Iterator

import pytest

from flask_havn.currency import to_usd_cents
from flask_havn.sandbox.backend import Event, SandboxBackend
from flask_havn.sandbox.errors import SandboxError
from flask_havn.sandbox.settings import SandboxSettings

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def backend() -> Iterator[SandboxBackend]:
    b = SandboxBackend(SandboxSettings(seed=9), clock=lambda: NOW)
    yield b
    b.close()


def error_of(call: Any) -> SandboxError:
    with pytest.raises(SandboxError) as info:
        call()
    return info.value


def txn(**extra: Any) -> Dict[str, Any]:
    return {"amount": 10000, "payment_gateway_transaction_id": "pg_1", "payment_gateway": "STRIPE",
            "customer_email": "c@example.com", "referral_code": "HAVN-CH-001", **extra}


def test_seed_builds_hierarchy_in_order_and_reports_codes(backend: SandboxBackend) -> None:
    created = backend.seed({
        "associates": [{"name": "Root Owner", "role": "owner"}, {"name": "Child", "referral_code": "havn-ch-001",
                                                                 "upline_code": "HAVN-RO-001",
                                                                 "email": "child@example.com"}],
        "vouchers": [{"associate_code": "HAVN-CH-001", "type": "DISCOUNT_FIXED", "value": 500, "code": "HAVN-V1"}],
        "rates": {"IDR": "0.00007"},
    })
    root, child = created["associates"]
    assert (root["referral_code"], child["referral_code"]) == ("HAVN-RO-001", "HAVN-CH-001")
    assert child["upline_id"] == root["associate_id"] and child["user_id"] is not None
    assert created["vouchers"][0]["code"] == "HAVN-V1"
    assert created["rates"] == {"IDR": "0.00007"}
    assert backend.rates["IDR"] == Decimal("0.00007")
    dump = backend.dump()
    assert dump["rates"]["IDR"] == "0.00007"
    assert dump["associate_tree"][0]["downlines"][0]["referral_code"] == "HAVN-CH-001"
    assert dump["users"][0]["associate_id"] == child["associate_id"]
    assert dump["associates"][0]["role"] == "owner"


@pytest.mark.parametrize("spec, status, field", [
    ({"associates": [{"name": "A"}, {"name": "B", "upline_code": "HAVN-ZZ-001"}]}, 404, "associates[1].upline_code"),
    ({"associates": [{"name": ""}]}, 400, "associates[0].name"),
    ({"associates": [{"name": "A", "role": "boss"}]}, 400, "associates[0].role"),
    ({"associates": "A"}, 400, "associates"),
    ({"associates": [{"name": "A"}], "vouchers": [{"associate_code": "HAVN-AX-001", "type": "NOPE"}]}, 400,
     "vouchers[0].type"),
    ({"associates": [{"name": "A"}], "rates": {"IDR": 0.00007}}, 400, "rates.IDR"),
    ({"widgets": []}, 400, "widgets"),
    ({"users": [{"email": "u@example.com", "name": "U", "referral_code": "HAVN-NO-001"}]}, 404,
     "users[0].referral_code"),
])
def test_bad_seed_is_refused_and_creates_nothing(backend: SandboxBackend, spec: Dict[str, Any], status: int,
                                                 field: str) -> None:
    before = backend.dump()
    err = error_of(lambda: backend.seed(spec))
    assert (err.status, err.field) == (status, field)
    assert backend.dump() == before


def test_seed_duplicate_code_is_409(backend: SandboxBackend) -> None:
    backend.seed({"associates": [{"name": "A", "referral_code": "HAVN-AA-001"}]})
    err = error_of(lambda: backend.seed({"associates": [{"name": "B", "referral_code": "havn-aa-001"}]}))
    assert err.status == 409


def test_seed_non_object_is_400(backend: SandboxBackend) -> None:
    assert error_of(lambda: backend.seed([])).status == 400  # type: ignore[arg-type]


def test_set_rates_changes_conversion(backend: SandboxBackend) -> None:
    backend.seed({"associates": [{"name": "Chad", "referral_code": "HAVN-CH-001"}]})
    result = backend.set_rates({"idr": "0.0001"})
    assert result["rates"]["IDR"] == "0.0001" and result["rates"]["USD"] == "1"
    body = backend.transaction(txn(amount=150000, currency="IDR", server_side_conversion=True)).body
    assert body["transaction"]["amount_usd"] == 1500 and body["transaction"]["exchange_rate"] == "0.0001"
    backend.reset()
    assert backend.dump()["rates"]["IDR"] == "0.0000633"


@pytest.mark.parametrize("rates, field", [
    ({"IDR": 0.0001}, "rates.IDR"), ({"IDR": "-1"}, "rates.IDR"), ({"IDR": "abc"}, "rates.IDR"),
    ({"XYZ": "1"}, "rates.XYZ"), ({"USD": "2"}, "rates.USD"), ({"IDR": True}, "rates.IDR"),
])
def test_bad_rates_are_400(backend: SandboxBackend, rates: Dict[str, Any], field: str) -> None:
    err = error_of(lambda: backend.set_rates(rates))
    assert (err.status, err.field) == (400, field)
    assert backend.dump()["rates"]["IDR"] == "0.0000633"


def test_build_event_from_stored_transaction_matches_its_event(backend: SandboxBackend) -> None:
    backend.seed({"associates": [{"name": "Chad", "referral_code": "HAVN-CH-001"}]})
    out = backend.transaction(txn())
    txn_id = out.body["transaction"]["transaction_id"]
    event = backend.build_event("commission.distributed", transaction_id=txn_id)
    assert isinstance(event, Event) and event.test_mode is False
    assert event.data == out.events[0].data
    bumped = backend.build_event("commission.distributed", transaction_id=txn_id,
                                 overrides={"transaction": {"status": "approved"}, "note": 1})
    assert bumped.data["transaction"]["status"] == "approved"
    assert bumped.data["transaction"]["transaction_id"] == txn_id and bumped.data["note"] == 1
    err = error_of(lambda: backend.build_event("transaction.conversion_failed", transaction_id=txn_id))
    assert err.status == 422


def test_build_event_from_failed_transaction(backend: SandboxBackend) -> None:
    backend.seed({"associates": [{"name": "Chad", "referral_code": "HAVN-CH-001"}]})
    out = backend.transaction(txn(amount=5, custom_fields={"original_currency": "IDR", "original_amount": 150000}))
    txn_id = out.body["transaction"]["transaction_id"]
    assert backend.build_event("transaction.conversion_failed", transaction_id=txn_id).data == out.events[0].data
    assert error_of(lambda: backend.build_event("commission.distributed", transaction_id=txn_id)).status == 422


def test_invented_events_are_consistent(backend: SandboxBackend) -> None:
    paid = backend.build_event("commission.distributed").data
    assert [c["amount"] for c in paid["commissions"]] == [500, 300, 200, 100, 100]
    assert paid["total_commission"] + paid["transaction"]["platform_amount"] == paid["transaction"]["amount"]
    assert paid["transaction"]["status"] == "completed"
    failed = backend.build_event("transaction.conversion_failed").data
    assert failed["expected_amount"] == to_usd_cents(150000, "IDR", "0.0000633")
    assert failed["submitted_amount"] != failed["expected_amount"]
    assert failed["transaction"]["amount"] == failed["submitted_amount"]
    assert failed["server_exchange_rate"] == "0.0000633" and failed["transaction"]["status"] == "FAILED"
    assert backend.dump()["counts"]["transactions"] == 0
    again = backend.build_event("commission.distributed").data
    assert again["transaction"]["transaction_id"] != paid["transaction"]["transaction_id"]


def test_build_event_refusals(backend: SandboxBackend) -> None:
    assert error_of(lambda: backend.build_event("payment.refunded")).status == 400
    assert error_of(lambda: backend.build_event("commission.distributed", transaction_id="txn_nope")).status == 404
    assert error_of(lambda: backend.build_event("commission.distributed",
                                                overrides=["x"])).status == 400  # type: ignore[arg-type]


def test_dump_lists_everything(backend: SandboxBackend) -> None:
    backend.seed({"associates": [{"name": "Top", "referral_code": "HAVN-TP-001"},
                                 {"name": "Chad", "referral_code": "HAVN-CH-001", "upline_code": "HAVN-TP-001"}]})
    backend.transaction(txn(), idempotency_key="k1")
    dump = backend.dump()
    assert dump["counts"] == {"users": 0, "associates": 2, "transactions": 1, "commissions": 2, "vouchers": 0,
                              "login_tokens": 0}
    assert dump["transactions"][0]["idempotency_key"] == "k1" and dump["transactions"][0]["amount_usd"] == 10000
    assert [(c["referral_code"], c["amount"], c["percentage"]) for c in dump["commissions"]] == [
        ("HAVN-CH-001", 500, 5.0), ("HAVN-TP-001", 300, 3.0)]
    assert {c["transaction_id"] for c in dump["commissions"]} == {dump["transactions"][0]["transaction_id"]}

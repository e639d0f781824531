"""Sandbox backend: POST /transaction rules (commissions, idempotency, currency, customer type, promo)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Iterator

import pytest

from flask_havn.currency import to_usd_cents
from flask_havn.sandbox.backend import SandboxBackend
from flask_havn.sandbox.errors import SandboxError
from flask_havn.sandbox.settings import SandboxSettings

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def backend() -> Iterator[SandboxBackend]:
    b = SandboxBackend(SandboxSettings(seed=7), clock=lambda: NOW)
    yield b
    b.close()


def chain(backend: SandboxBackend, depth: int) -> None:
    """Associates HAVN-LV-{depth} (top) … HAVN-LV-001 (bottom, the referral code)."""
    specs = []
    for n in range(depth, 0, -1):
        spec: Dict[str, Any] = {"name": f"Level {n}", "referral_code": f"HAVN-LV-{n:03d}"}
        if n < depth:
            spec["upline_code"] = f"HAVN-LV-{n + 1:03d}"
        specs.append(spec)
    backend.seed({"associates": specs})


def txn(**overrides: Any) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "amount": 10000, "payment_gateway_transaction_id": "pg_1", "payment_gateway": "STRIPE",
        "customer_email": "customer@example.com", "referral_code": "HAVN-LV-001", "currency": "USD",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def error_of(call: Any) -> SandboxError:
    with pytest.raises(SandboxError) as info:
        call()
    return info.value


def test_five_levels_split_100_dollars_exactly(backend: SandboxBackend) -> None:
    chain(backend, 5)
    out = backend.transaction(txn())
    assert out.status == 201
    body = out.body
    assert [c["amount"] for c in body["commissions"]] == [500, 300, 200, 100, 100]
    assert [c["level"] for c in body["commissions"]] == [1, 2, 3, 4, 5]
    assert [c["referral_code"] for c in body["commissions"]] == [f"HAVN-LV-{n:03d}" for n in range(1, 6)]
    assert [c["percentage"] for c in body["commissions"]] == [5.0, 3.0, 2.0, 1.0, 1.0]
    assert {(c["type"], c["direction"], c["status"]) for c in body["commissions"]} == {("REFERRAL", "UP", "PENDING")}
    assert body["transaction"]["platform_amount"] == 8800
    assert body["total_commission"] == 1200
    assert body["total_commission"] + body["transaction"]["platform_amount"] == 10000
    assert body["commission_distributed"] is True and body["success"] is True
    t = body["transaction"]
    assert (t["status"], t["acquisition_method"], t["customer_type"]) == ("completed", "REFERRAL", "NEW_CUSTOMER")
    assert (t["referral_code"], t["payment_gateway_transaction_id"], t["subtotal_discount"]) == ("HAVN-LV-001", "pg_1", 0)
    assert t["created_at"] == "2026-11-27T10:00:00Z"
    assert [e.type for e in out.events] == ["commission.distributed"]
    event = out.events[0]
    assert event.test_mode is False
    assert event.data["transaction"] == t
    assert event.data["commissions"] == body["commissions"]
    assert event.data["total_commission"] == 1200


def test_six_level_chain_pays_only_five_levels(backend: SandboxBackend) -> None:
    chain(backend, 6)
    body = backend.transaction(txn()).body
    assert len(body["commissions"]) == 5
    assert "HAVN-LV-006" not in {c["referral_code"] for c in body["commissions"]}
    assert backend.dump()["counts"]["commissions"] == 5


def test_odd_amount_floors_each_level_and_platform_keeps_the_rest(backend: SandboxBackend) -> None:
    chain(backend, 5)
    body = backend.transaction(txn(amount=3333)).body
    assert [c["amount"] for c in body["commissions"]] == [166, 99, 66, 33, 33]
    assert body["transaction"]["platform_amount"] == 3333 - 397
    assert sum(c["amount"] for c in body["commissions"]) + body["transaction"]["platform_amount"] == 3333


def test_short_chain_leaves_missing_levels_to_the_platform(backend: SandboxBackend) -> None:
    chain(backend, 2)
    body = backend.transaction(txn()).body
    assert [c["amount"] for c in body["commissions"]] == [500, 300]
    assert body["transaction"]["platform_amount"] == 9200


def test_inactive_upline_earns_nothing_but_chain_continues(backend: SandboxBackend) -> None:
    backend.seed({"associates": [
        {"name": "Top", "referral_code": "HAVN-TP-001"},
        {"name": "Sleepy", "referral_code": "HAVN-SL-001", "upline_code": "HAVN-TP-001", "active": False},
        {"name": "Seller", "referral_code": "HAVN-SE-001", "upline_code": "HAVN-SL-001"},
    ]})
    body = backend.transaction(txn(referral_code="HAVN-SE-001")).body
    assert [(c["referral_code"], c["level"], c["amount"]) for c in body["commissions"]] == [
        ("HAVN-SE-001", 1, 500), ("HAVN-TP-001", 3, 200)]
    assert body["transaction"]["platform_amount"] == 9300


def test_custom_commission_levels() -> None:
    b = SandboxBackend(SandboxSettings(commission_levels=("10", "2.5")), clock=lambda: NOW)
    try:
        chain(b, 3)
        body = b.transaction(txn(amount=999)).body
        assert [(c["amount"], c["percentage"]) for c in body["commissions"]] == [(99, 10.0), (24, 2.5)]
        assert body["transaction"]["platform_amount"] == 999 - 123
    finally:
        b.close()


def test_without_referral_code_is_platform_revenue_without_event(backend: SandboxBackend) -> None:
    out = backend.transaction(txn(referral_code=None))
    assert out.status == 201
    assert out.body["commissions"] == [] and out.body["commission_distributed"] is False
    assert out.body["transaction"]["acquisition_method"] is None
    assert out.body["transaction"]["platform_amount"] == 10000
    assert out.events == []
    assert backend.dump()["counts"]["transactions"] == 1


def test_unknown_referral_code_is_404_and_inactive_is_422(backend: SandboxBackend) -> None:
    err = error_of(lambda: backend.transaction(txn(referral_code="HAVN-NO-999")))
    assert (err.status, err.error, err.field) == (404, "NotFound", "referral_code")
    backend.seed({"associates": [{"name": "Off", "referral_code": "HAVN-OF-001", "active": False}]})
    err = error_of(lambda: backend.transaction(txn(referral_code="havn-of-001")))
    assert (err.status, err.field) == (422, "referral_code")
    assert backend.dump()["counts"]["transactions"] == 0


@pytest.mark.parametrize("overrides, field", [
    ({"amount": "10000"}, "amount"),
    ({"amount": 0}, "amount"),
    ({"amount": True}, "amount"),
    ({"amount": 10 ** 10}, "amount"),
    ({"payment_gateway_transaction_id": None}, "payment_gateway_transaction_id"),
    ({"payment_gateway_transaction_id": "x" * 201}, "payment_gateway_transaction_id"),
    ({"payment_gateway": None}, "payment_gateway"),
    ({"payment_gateway": "   "}, "payment_gateway"),
    ({"customer_email": None}, "customer_email"),
    ({"customer_email": "not-an-email"}, "customer_email"),
    ({"currency": "XXX"}, "currency"),
    ({"currency": 840}, "currency"),
    ({"referral_code": "ab"}, "referral_code"),
    ({"referral_code": 123}, "referral_code"),
    ({"custom_fields": {"a": 1, "b": 2, "c": 3, "d": 4}}, "custom_fields"),
    ({"custom_fields": {"a": {"nested": 1}}}, "custom_fields.a"),
    ({"custom_fields": ["a"]}, "custom_fields"),
    ({"subtotal_transaction": 9999}, "subtotal_transaction"),
    ({"server_side_conversion": "yes"}, "server_side_conversion"),
    ({"customer_type": "VIP"}, "customer_type"),
    ({"invoice_id": "i" * 101}, "invoice_id"),
    ({"invoice_id": 42}, "invoice_id"),
    ({"acquisition_method": "VOUCHER"}, "acquisition_method"),
])
def test_invalid_payloads_are_400_naming_the_field(backend: SandboxBackend, overrides: Dict[str, Any],
                                                   field: str) -> None:
    chain(backend, 1)
    payload = txn()
    payload.update(overrides)
    payload = {k: v for k, v in payload.items() if v is not None}
    err = error_of(lambda: backend.transaction(payload))
    assert (err.status, err.error, err.field) == (400, "ValidationError", field)
    assert err.body()["field"] == field and field in err.message
    assert backend.dump()["counts"]["transactions"] == 0


def test_non_object_payload_is_400(backend: SandboxBackend) -> None:
    err = error_of(lambda: backend.transaction(["amount", 1]))  # type: ignore[arg-type]
    assert err.status == 400


def test_replay_on_gateway_id_returns_identical_answer_and_creates_nothing(backend: SandboxBackend) -> None:
    chain(backend, 3)
    first = backend.transaction(txn())
    before = backend.dump()
    again = backend.transaction(txn())
    assert (again.status, again.body) == (first.status, first.body)
    assert again.events == []
    assert backend.dump() == before


def test_replay_on_idempotency_key(backend: SandboxBackend) -> None:
    chain(backend, 1)
    first = backend.transaction(txn(), idempotency_key="key-1")
    again = backend.transaction(txn(), idempotency_key="key-1")
    assert again.body == first.body and again.events == []
    err = error_of(lambda: backend.transaction(txn(payment_gateway_transaction_id="pg_2"), idempotency_key="key-1"))
    assert (err.status, err.error, err.field) == (409, "Conflict", "Idempotency-Key")
    assert backend.dump()["counts"]["transactions"] == 1


@pytest.mark.parametrize("change", [{"amount": 9999}, {"referral_code": "HAVN-LV-002"}])
def test_same_gateway_id_with_different_payload_is_409(backend: SandboxBackend, change: Dict[str, Any]) -> None:
    chain(backend, 2)
    backend.transaction(txn())
    err = error_of(lambda: backend.transaction(txn(**change)))
    assert (err.status, err.field) == (409, "payment_gateway_transaction_id")
    assert "pg_1" in err.message
    counts = backend.dump()["counts"]
    assert (counts["transactions"], counts["commissions"]) == (1, 2)


def test_blank_idempotency_key_is_400(backend: SandboxBackend) -> None:
    chain(backend, 1)
    err = error_of(lambda: backend.transaction(txn(), idempotency_key="   "))
    assert (err.status, err.field) == (400, "Idempotency-Key")


def test_customer_type_is_decided_by_history_case_insensitively(backend: SandboxBackend) -> None:
    chain(backend, 1)
    first = backend.transaction(txn(customer_email="Ann@Example.com", customer_type="RECURRING")).body
    assert first["transaction"]["customer_type"] == "NEW_CUSTOMER"
    second = backend.transaction(txn(customer_email="ann@example.COM", payment_gateway_transaction_id="pg_2",
                                     customer_type="NEW_CUSTOMER")).body
    assert second["transaction"]["customer_type"] == "RECURRING"
    other = backend.transaction(txn(customer_email="bob@example.com", payment_gateway_transaction_id="pg_3")).body
    assert other["transaction"]["customer_type"] == "NEW_CUSTOMER"


def test_server_side_conversion_idr(backend: SandboxBackend) -> None:
    chain(backend, 5)
    out = backend.transaction(txn(amount=150000, currency="IDR", server_side_conversion=True,
                                  subtotal_transaction=200000))
    t = out.body["transaction"]
    # 150000 IDR × 0.0000633 = 9.495 USD → 949.5 cents → 950 (half-up)
    assert (t["amount"], t["currency"], t["amount_usd"]) == (150000, "IDR", 950)
    assert (t["exchange_rate"], t["original_amount"], t["original_currency"]) == ("0.0000633", 150000, "IDR")
    assert t["subtotal_discount"] == 50000
    assert [c["amount"] for c in out.body["commissions"]] == [47, 28, 19, 9, 9]
    assert t["platform_amount"] == 950 - 112


def test_non_usd_without_conversion_is_400_explaining_both_options(backend: SandboxBackend) -> None:
    chain(backend, 1)
    err = error_of(lambda: backend.transaction(txn(amount=150000, currency="IDR")))
    assert (err.status, err.field) == (400, "currency")
    assert "server_side_conversion" in err.message and "original_amount" in err.message


def test_client_conversion_matching_server_rate_is_normal(backend: SandboxBackend) -> None:
    chain(backend, 1)
    out = backend.transaction(txn(amount=950, custom_fields={
        "original_currency": "IDR", "original_amount": "150000", "exchange_rate": "0.0000633"}))
    assert out.status == 201
    assert out.body["transaction"]["status"] == "completed"
    assert [c["amount"] for c in out.body["commissions"]] == [47]


def test_client_conversion_mismatch_is_failed_with_event(backend: SandboxBackend) -> None:
    chain(backend, 3)
    out = backend.transaction(txn(amount=1001, invoice_id="INV-77", custom_fields={
        "original_currency": "IDR", "original_amount": 150000, "exchange_rate": 0.0000667}))
    assert out.status == 200
    assert out.body["success"] is False
    assert out.body["commissions"] == [] and out.body["total_commission"] == 0
    assert out.body["transaction"]["status"] == "FAILED"
    assert "does not match" in out.body["message"]
    assert [e.type for e in out.events] == ["transaction.conversion_failed"]
    data = out.events[0].data
    assert {k: data[k] for k in ("original_amount", "original_currency", "submitted_amount", "expected_amount",
                                 "submitted_exchange_rate", "server_exchange_rate")} == {
        "original_amount": 150000, "original_currency": "IDR", "submitted_amount": 1001, "expected_amount": 950,
        "submitted_exchange_rate": "0.0000667", "server_exchange_rate": "0.0000633"}
    assert data["reason"] == "converted amount does not match server conversion"
    assert data["transaction"]["status"] == "FAILED" and data["transaction"]["invoice_id"] == "INV-77"
    dump = backend.dump()
    assert dump["counts"]["commissions"] == 0
    assert [t["status"] for t in dump["transactions"]] == ["FAILED"]
    replay = backend.transaction(txn(amount=1001, invoice_id="INV-77", custom_fields={
        "original_currency": "IDR", "original_amount": 150000, "exchange_rate": 0.0000667}))
    assert (replay.status, replay.body, replay.events) == (200, out.body, [])


def test_failed_transaction_does_not_make_the_customer_recurring(backend: SandboxBackend) -> None:
    chain(backend, 1)
    backend.transaction(txn(amount=1001, custom_fields={"original_currency": "IDR", "original_amount": 150000}))
    body = backend.transaction(txn(payment_gateway_transaction_id="pg_2")).body
    assert body["transaction"]["customer_type"] == "NEW_CUSTOMER"


def test_incomplete_client_audit_fields_are_400(backend: SandboxBackend) -> None:
    chain(backend, 1)
    err = error_of(lambda: backend.transaction(txn(custom_fields={"exchange_rate": "0.0000633"})))
    assert err.status == 400 and err.field == "custom_fields.original_currency"
    err = error_of(lambda: backend.transaction(txn(custom_fields={"original_currency": "IDR",
                                                                  "original_amount": "lots"})))
    assert err.field == "custom_fields.original_amount"


def test_test_mode_computes_everything_and_persists_nothing(backend: SandboxBackend) -> None:
    chain(backend, 5)
    before = backend.dump()
    out = backend.transaction(txn(), idempotency_key="k", test_mode=True)
    assert out.status == 201
    assert [c["amount"] for c in out.body["commissions"]] == [500, 300, 200, 100, 100]
    assert [(e.type, e.test_mode) for e in out.events] == [("commission.distributed", True)]
    assert backend.dump() == before
    real = backend.transaction(txn(), idempotency_key="k")
    assert real.status == 201 and real.events[0].test_mode is False
    assert real.body["transaction"]["customer_type"] == "NEW_CUSTOMER"


def test_test_mode_failure_event_is_marked(backend: SandboxBackend) -> None:
    chain(backend, 1)
    out = backend.transaction(txn(amount=1, custom_fields={"original_currency": "IDR", "original_amount": 150000}),
                              test_mode=True)
    assert [(e.type, e.test_mode) for e in out.events] == [("transaction.conversion_failed", True)]
    assert backend.dump()["counts"]["transactions"] == 0


# -- promo codes ------------------------------------------------------------------------------


def with_voucher(backend: SandboxBackend, **spec: Any) -> str:
    chain(backend, 2)
    voucher = {"associate_code": "HAVN-LV-001", "type": "DISCOUNT_PERCENTAGE", "value": 2000,
               "min_purchase": 5000, "usage_limit": 2}
    voucher.update(spec)
    return backend.seed({"vouchers": [voucher]})["vouchers"][0]["code"]


def test_promo_code_gives_referral_voucher_and_counts_usage(backend: SandboxBackend) -> None:
    code = with_voucher(backend)
    body = backend.transaction(txn(amount=8000, subtotal_transaction=10000, promo_code=code.lower())).body
    t = body["transaction"]
    assert (t["acquisition_method"], t["subtotal_discount"]) == ("REFERRAL_VOUCHER", 2000)
    assert [c["amount"] for c in body["commissions"]] == [400, 240]
    assert backend.dump()["vouchers"][0]["current_usage"] == 1


def test_promo_code_without_referral_is_400(backend: SandboxBackend) -> None:
    code = with_voucher(backend)
    err = error_of(lambda: backend.transaction(txn(referral_code=None, promo_code=code)))
    assert (err.status, err.field) == (400, "promo_code")


def test_unknown_promo_code_is_404(backend: SandboxBackend) -> None:
    with_voucher(backend)
    err = error_of(lambda: backend.transaction(txn(promo_code="HAVN-NOPE-S01-AAAAAA")))
    assert (err.status, err.field) == (404, "promo_code")


def test_promo_min_purchase_uses_subtotal_when_given(backend: SandboxBackend) -> None:
    code = with_voucher(backend, min_purchase=9000)
    err = error_of(lambda: backend.transaction(txn(amount=8000, promo_code=code)))
    assert (err.status, err.field) == (422, "promo_code")
    out = backend.transaction(txn(amount=8000, subtotal_transaction=10000, promo_code=code))
    assert out.status == 201


def test_promo_client_type_must_match_customer_type(backend: SandboxBackend) -> None:
    code = with_voucher(backend, client_type="RECURRING")
    err = error_of(lambda: backend.transaction(txn(promo_code=code)))
    assert (err.status, err.field) == (422, "promo_code")
    assert "RECURRING" in err.message
    backend.transaction(txn(payment_gateway_transaction_id="pg_first"))
    assert backend.transaction(txn(promo_code=code)).status == 201


def test_used_up_inactive_and_expired_promos_are_422(backend: SandboxBackend) -> None:
    code = with_voucher(backend, usage_limit=1)
    backend.transaction(txn(promo_code=code))
    err = error_of(lambda: backend.transaction(txn(payment_gateway_transaction_id="pg_2", promo_code=code)))
    assert err.status == 422 and "used up" in err.message
    backend.seed({"vouchers": [
        {"associate_code": "HAVN-LV-001", "type": "DISCOUNT_FIXED", "value": 500, "code": "HAVN-OFF",
         "active": False},
        {"associate_code": "HAVN-LV-001", "type": "DISCOUNT_FIXED", "value": 500, "code": "HAVN-OLD",
         "end_date": "2026-11-26"},
    ]})
    for dead in ("HAVN-OFF", "HAVN-OLD"):
        err = error_of(lambda: backend.transaction(txn(payment_gateway_transaction_id="pg_3", promo_code=dead)))
        assert err.status == 422
    assert backend.dump()["counts"]["transactions"] == 1


def test_client_converted_original_above_havns_cap_is_accepted(backend: SandboxBackend) -> None:
    chain(backend, 1)
    usd = to_usd_cents(2_000_000_000, "IDR", "0.0000633")
    out = backend.transaction(txn(amount=usd, custom_fields={
        "original_currency": "IDR", "original_amount": 2_000_000_000, "exchange_rate": "0.0000633"}))
    assert out.status == 201 and out.body["transaction"]["original_amount"] == 2_000_000_000


@pytest.mark.parametrize("original, rate, field", [
    (10 ** 15 + 1, "0.0000633", "custom_fields.original_amount"),
    ("9" * 400, "0.0000633", "custom_fields.original_amount"),
    (150000, "1e-999999999", "custom_fields.exchange_rate"),
    (150000, "1" + "0" * 100, "custom_fields.exchange_rate"),
    (150000, "abc", "custom_fields.exchange_rate"),
])
def test_hostile_client_audit_fields_are_400(backend: SandboxBackend, original: Any, rate: str, field: str) -> None:
    chain(backend, 1)
    err = error_of(lambda: backend.transaction(txn(amount=950, custom_fields={
        "original_currency": "IDR", "original_amount": original, "exchange_rate": rate})))
    assert (err.status, err.field) == (400, field)
    assert backend.dump()["transactions"] == []

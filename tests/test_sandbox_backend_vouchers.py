"""Sandbox backend: voucher seeding, POST /voucher/validate and GET /vouchers."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List

import pytest

from flask_havn.sandbox.backend import SandboxBackend
from flask_havn.sandbox.errors import SandboxError
from flask_havn.sandbox.settings import SandboxSettings

NOW = datetime(2026, 6, 15, 12, 0, 0, tzinfo=timezone.utc)
REQUIRED = {"serial", "saas_company_id", "associate_id", "code", "type", "value", "usage_limit", "current_usage",
            "min_purchase"}


@pytest.fixture
def backend() -> Iterator[SandboxBackend]:
    b = SandboxBackend(SandboxSettings(seed=11), clock=lambda: NOW)
    b.seed({"associates": [{"name": "Mike Jones", "referral_code": "HAVN-MJ-001"}]})
    yield b
    b.close()


def add(backend: SandboxBackend, *vouchers: Dict[str, Any]) -> List[str]:
    specs = [{"associate_code": "HAVN-MJ-001", "type": "DISCOUNT_PERCENTAGE", "value": 2000, "min_purchase": 5000,
              "usage_limit": 10, **v} for v in vouchers]
    return [v["code"] for v in backend.seed({"vouchers": specs})["vouchers"]]


def error_of(call: Any) -> SandboxError:
    with pytest.raises(SandboxError) as info:
        call()
    return info.value


def test_generated_codes_follow_havn_format(backend: SandboxBackend) -> None:
    codes = add(backend, {}, {})
    assert all(re.match(r"^HAVN-MJ001-S01-[A-Z0-9]{6}$", c) for c in codes)
    assert len(set(codes)) == 2


def test_validate_valid_voucher(backend: SandboxBackend) -> None:
    (code,) = add(backend, {})
    out = backend.validate_voucher({"voucher_code": code.lower(), "amount": 5000})
    assert (out.status, out.body, out.events) == (200, None, [])  # HAVN answers a valid voucher by status alone
    [v] = backend.list_vouchers({}).body["data"]
    assert REQUIRED <= set(v)
    assert (v["code"], v["value"], v["is_valid"], v["remaining_usage"]) == (code, 2000, True, 10)
    assert v["associate"]["referral_code"] == "HAVN-MJ-001"


def test_validate_without_amount_checks_status_only(backend: SandboxBackend) -> None:
    (code,) = add(backend, {"min_purchase": 10 ** 6})
    assert backend.validate_voucher({"voucher_code": code}).status == 200


def test_validate_unknown_is_404(backend: SandboxBackend) -> None:
    err = error_of(lambda: backend.validate_voucher({"voucher_code": "HAVN-NOPE"}))
    assert (err.status, err.error) == (404, "NotFound")


@pytest.mark.parametrize("spec, words", [
    ({"active": False}, "inactive"),
    ({"end_date": "2026-06-14"}, "expired"),
    ({"start_date": "2026-06-16"}, "not valid before"),
])
def test_validate_unusable_is_400(backend: SandboxBackend, spec: Dict[str, Any], words: str) -> None:
    (code,) = add(backend, spec)
    err = error_of(lambda: backend.validate_voucher({"voucher_code": code}))
    assert err.status == 400 and words in err.message


def test_validate_used_up_is_400(backend: SandboxBackend) -> None:
    (code,) = add(backend, {"usage_limit": 1, "min_purchase": 0})
    backend.transaction({"amount": 100, "payment_gateway_transaction_id": "pg", "payment_gateway": "X",
                         "customer_email": "c@example.com", "referral_code": "HAVN-MJ-001", "promo_code": code})
    err = error_of(lambda: backend.validate_voucher({"voucher_code": code}))
    assert err.status == 400 and "used up" in err.message
    listed = backend.list_vouchers({}).body["data"][0]
    assert (listed["current_usage"], listed["remaining_usage"], listed["usage_percentage"]) == (1, 0, 100.0)
    assert listed["is_valid"] is False


def test_validate_amount_below_min_purchase_is_422(backend: SandboxBackend) -> None:
    (code,) = add(backend, {})
    err = error_of(lambda: backend.validate_voucher({"voucher_code": code, "amount": 4999}))
    assert (err.status, err.field) == (422, "amount")


def test_validate_converts_amount_through_usd(backend: SandboxBackend) -> None:
    (code,) = add(backend, {})  # min 5000 USD cents
    # 1,000,000 IDR × 0.0000633 = 63.30 USD
    assert backend.validate_voucher({"voucher_code": code, "amount": 1000000, "currency": "IDR"}).status == 200
    err = error_of(lambda: backend.validate_voucher({"voucher_code": code, "amount": 700000, "currency": "idr"}))
    assert err.status == 422 and "4431" in err.message  # 44.31 USD


def test_validate_into_a_non_usd_voucher(backend: SandboxBackend) -> None:
    (code,) = add(backend, {"currency": "EUR", "min_purchase": 1000})  # 10.00 EUR = 10.80 USD
    assert backend.validate_voucher({"voucher_code": code, "amount": 1080, "currency": "USD"}).status == 200
    assert error_of(lambda: backend.validate_voucher(
        {"voucher_code": code, "amount": 1079, "currency": "USD"})).status == 422
    assert backend.validate_voucher({"voucher_code": code, "amount": 1000}).status == 200  # already EUR


@pytest.mark.parametrize("payload, field", [
    ({}, "voucher_code"), ({"voucher_code": ""}, "voucher_code"), ({"voucher_code": 5}, "voucher_code"),
    ({"voucher_code": "H" * 101}, "voucher_code"), ({"voucher_code": "HAVN-X", "amount": "5"}, "amount"),
    ({"voucher_code": "HAVN-X", "amount": -1}, "amount"), ({"voucher_code": "HAVN-X", "currency": "ABC"}, "currency"),
])
def test_validate_bad_requests_are_400(backend: SandboxBackend, payload: Dict[str, Any], field: str) -> None:
    err = error_of(lambda: backend.validate_voucher(payload))
    assert (err.status, err.field) == (400, field)


@pytest.mark.parametrize("spec, field", [
    ({"associate_code": "HAVN-NO-001"}, "vouchers[0].associate_code"),
    ({"type": "FREE"}, "vouchers[0].type"),
    ({"value": 0}, "vouchers[0].value"),
    ({"value": 10001}, "vouchers[0].value"),
    ({"start_date": "2026-13-01"}, "vouchers[0].start_date"),
    ({"start_date": "2026-07-01", "end_date": "2026-06-01"}, "vouchers[0].end_date"),
    ({"client_type": "VIP"}, "vouchers[0].client_type"),
    ({"currency": "XYZ"}, "vouchers[0].currency"),
])
def test_bad_voucher_seeds_are_refused(backend: SandboxBackend, spec: Dict[str, Any], field: str) -> None:
    err = error_of(lambda: add(backend, spec))
    assert err.field == field and err.status in (400, 404)
    assert backend.dump()["counts"]["vouchers"] == 0


def test_duplicate_voucher_code_is_409(backend: SandboxBackend) -> None:
    add(backend, {"code": "HAVN-SAME"})
    err = error_of(lambda: add(backend, {"code": "havn-same"}))
    assert err.status == 409


# -- list ------------------------------------------------------------------------------------


def test_list_shape_is_exact(backend: SandboxBackend) -> None:
    add(backend, {}, {})
    body = backend.list_vouchers({}).body
    assert set(body) == {"success", "message", "data", "pagination"}
    assert body["pagination"] == {"page": 1, "limit": 10, "total": 2, "total_pages": 1, "has_prev": False,
                                  "has_next": False}
    assert all(REQUIRED <= set(v) for v in body["data"])
    assert {v["saas_company_id"] for v in body["data"]} == {1}


def test_list_empty(backend: SandboxBackend) -> None:
    pagination = backend.list_vouchers({}).body["pagination"]
    assert pagination == {"page": 1, "limit": 10, "total": 0, "total_pages": 0, "has_prev": False,
                          "has_next": False}


def test_list_pages(backend: SandboxBackend) -> None:
    add(backend, *[{"value": 100 * (i + 1)} for i in range(5)])
    body = backend.list_vouchers({"page": "2", "per_page": "2", "sort_by": "value", "sort_order": "asc"}).body
    assert [v["value"] for v in body["data"]] == [300, 400]
    assert body["pagination"] == {"page": 2, "limit": 2, "total": 5, "total_pages": 3, "has_prev": True,
                                  "has_next": True}
    assert backend.list_vouchers({"page": "9"}).body["data"] == []


@pytest.mark.parametrize("params, expected", [
    ({"active": "True"}, ["HAVN-A"]),
    ({"active": "false"}, ["HAVN-B"]),
    ({"active": "1"}, ["HAVN-A"]),
    ({"type": "discount_fixed"}, ["HAVN-B"]),
    ({"client_type": "RECURRING"}, ["HAVN-B"]),
    ({"currency": "EUR"}, ["HAVN-B"]),
    ({"search": "summer"}, ["HAVN-A"]),
    ({"search": "havn-b"}, ["HAVN-B"]),
    ({"min_value": "1000", "max_value": "3000"}, ["HAVN-A"]),
    ({"min_purchase_from": "6000"}, ["HAVN-B"]),
    ({"usage_limit_to": "5"}, ["HAVN-A"]),
    ({"end_date_from": "2026-12-01"}, ["HAVN-A"]),
    ({"start_date_to": "2026-01-31"}, ["HAVN-A"]),
    ({"is_expired": "true"}, []),
    ({"is_valid": "False"}, ["HAVN-B"]),
    ({"created_from": "2026-06-15", "created_to": "2026-06-15T23:59:59"}, ["HAVN-A", "HAVN-B"]),
    ({"created_from": "2026-06-16"}, []),
    ({"sort_by": "code", "sort_order": "ASC"}, ["HAVN-A", "HAVN-B"]),
    ({"sort_by": "code", "sort_order": "desc"}, ["HAVN-B", "HAVN-A"]),
])
def test_list_filters(backend: SandboxBackend, params: Dict[str, str], expected: List[str]) -> None:
    add(backend,
        {"code": "HAVN-A", "value": 2000, "usage_limit": 5, "start_date": "2026-01-01", "end_date": "2026-12-31",
         "description": "Summer sale"},
        {"code": "HAVN-B", "type": "DISCOUNT_FIXED", "value": 500, "active": False, "client_type": "RECURRING",
         "currency": "EUR", "min_purchase": 7000, "usage_limit": 50})
    params = dict(params)
    params.setdefault("sort_by", "code")
    params.setdefault("sort_order", "asc")
    assert [v["code"] for v in backend.list_vouchers(params).body["data"]] == expected


@pytest.mark.parametrize("params, field", [
    ({"page": "0"}, "page"), ({"page": "one"}, "page"), ({"per_page": "0"}, "per_page"),
    ({"per_page": "101"}, "per_page"), ({"active": "maybe"}, "active"), ({"is_valid": "yes"}, "is_valid"),
    ({"type": "FREE"}, "type"), ({"client_type": "VIP"}, "client_type"), ({"sort_by": "price"}, "sort_by"),
    ({"sort_order": "up"}, "sort_order"), ({"currency": "ABC"}, "currency"),
    ({"display_currency": "ABC"}, "display_currency"), ({"min_value": "3", "max_value": "2"}, "min_value"),
    ({"usage_limit_from": "9", "usage_limit_to": "1"}, "usage_limit_from"),
    ({"start_date_from": "2026-02-30"}, "start_date_from"), ({"end_date_to": "tomorrow"}, "end_date_to"),
    ({"created_from": "2026-01-01 10:00"}, "created_from"), ({"min_purchase_from": "-1"}, "min_purchase_from"),
])
def test_list_bad_params_are_400_naming_the_param(backend: SandboxBackend, params: Dict[str, str],
                                                  field: str) -> None:
    err = error_of(lambda: backend.list_vouchers(params))
    assert (err.status, err.field) == (400, field)


def test_list_display_currency_converts_money(backend: SandboxBackend) -> None:
    add(backend, {"type": "DISCOUNT_FIXED", "value": 1000, "min_purchase": 5000})
    v = backend.list_vouchers({"display_currency": "IDR"}).body["data"][0]
    # 50.00 USD / 0.0000633 = 789889.4… IDR; 10.00 USD → 157977.9… IDR
    assert (v["min_purchase"], v["value"], v["display_currency"], v["currency"]) == (789889, 157978, "IDR", "USD")

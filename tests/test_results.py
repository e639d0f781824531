"""Result dataclasses: tolerant parsing of every response shape, synonyms, merging."""
from __future__ import annotations

import pytest

from flask_havn.results import (
    Associate,
    BulkSummary,
    BulkSyncResult,
    Commission,
    Pagination,
    SyncResult,
    Transaction,
    TransactionResult,
    User,
    Voucher,
    VoucherPage,
    VoucherValidation,
)

HOSTILE = [None, [], "text", 42, {"unexpected": {"deep": [1, 2]}}, {"success": "maybe", "message": ["x"]}]


@pytest.mark.parametrize("data", HOSTILE)
@pytest.mark.parametrize("cls", [Associate, User, SyncResult, BulkSummary, BulkSyncResult, Transaction,
                                 Commission, TransactionResult, Voucher, Pagination, VoucherPage])
def test_never_crashes_on_hostile_shapes(cls, data):
    result = cls.from_dict(data)
    assert isinstance(result, cls)
    if hasattr(result, "raw"):
        assert result.raw == (dict(data) if isinstance(data, dict) else {})


def test_sync_result_synonyms_prefer_top_level():
    r = SyncResult.from_dict({"success": True, "referral_code": "HAVN-TOP", "user_id": "u_top",
                              "user": {"id": "u_in"}, "associate": {"referral_code": "HAVN-IN", "role": "owner"}})
    assert (r.referral_code, r.user_id, r.associate.role) == ("HAVN-TOP", "u_top", "owner")
    r = SyncResult.from_dict({"user": {"id": "u_in", "picture": "https://p"},
                              "associate": {"referral_code": "HAVN-IN"}})
    assert (r.referral_code, r.user_id, r.user.avatar) == ("HAVN-IN", "u_in", "https://p")


def test_bulk_summary_failed_synonym_and_numeric_strings():
    assert BulkSummary.from_dict({"total": "3", "success": 2, "failed": 1}) == BulkSummary(3, 2, 1)
    assert BulkSummary.from_dict({"total": 3, "success": 2, "errors": 1, "failed": 9}).errors == 1
    assert BulkSummary.from_dict({"total": "many", "success": None}) == BulkSummary(0, 0, 0)


def test_bulk_merge_reindexes_and_sums():
    a = BulkSyncResult.from_dict({"success": True, "message": "Bulk sync completed",
                                  "summary": {"total": 2, "success": 1, "errors": 1}, "referral_code": "HAVN-1",
                                  "errors": [{"index": 1, "email": "b@x.co", "error": "dup"}],
                                  "results": [{"email": "a@x.co", "success": True}]})
    b = BulkSyncResult.from_dict({"success": False, "message": "All failed",
                                  "summary": {"total": 2, "success": 0, "failed": 2}, "referral_code": "HAVN-2",
                                  "errors": [{"index": "0", "email": "c@x.co", "message": "bad"},
                                             {"email": "d@x.co", "error": "bad"}]})
    merged = BulkSyncResult.merge([(0, a), (2, b)])
    assert merged.success is True
    assert merged.summary == BulkSummary(4, 1, 3)
    assert [(e["index"], e["email"], e["error"]) for e in merged.errors] == [
        (1, "b@x.co", "dup"), (2, "c@x.co", "bad"), (None, "d@x.co", "bad")]
    assert merged.referral_code == "HAVN-1"
    assert merged.message == "Bulk sync completed; All failed"
    assert [r.email for r in merged.results] == ["a@x.co"]
    assert merged.raw == {"batches": [a.raw, b.raw]}
    # The parts are not modified by merging.
    assert b.errors[0]["index"] == 0


def test_bulk_merge_of_nothing():
    merged = BulkSyncResult.merge([])
    assert merged.success is False and merged.summary == BulkSummary() and merged.errors == []


def test_transaction_result_totals():
    r = TransactionResult.from_dict({"commissions": [{"amount": 500}, {"amount": 300.0}, {"amount": "x"}]})
    assert r.total_commission == 800 and r.commission_distributed is True
    r = TransactionResult.from_dict({"commissions": [], "total_commission": "120",
                                     "commission_distributed": "true"})
    assert r.total_commission == 120 and r.commission_distributed is True
    r = TransactionResult.from_dict({"commissions": [{"amount": 1}], "commission_distributed": False})
    assert r.commission_distributed is False


def test_commission_rate_fraction_becomes_percentage():
    assert Commission.from_dict({"rate": 0.03}).percentage == 3.0
    assert Commission.from_dict({"percentage": 10.0, "rate": 0.5}).percentage == 10.0
    c = Commission.from_dict({"commission_id": "c", "level": "2", "amount": 1000, "type": "REFERRAL",
                              "direction": "UP", "status": "PENDING", "referral_code": "HAVN-1"})
    assert (c.level, c.amount, c.direction, c.referral_code) == (2, 1000, "UP", "HAVN-1")


def test_transaction_fields_and_bad_numbers():
    t = Transaction.from_dict({"transaction_id": "t1", "amount": "150000", "currency": "IDR",
                               "subtotal_transaction": 1.5, "referral_code": "HAVN-1", "status": "FAILED"})
    assert (t.transaction_id, t.amount, t.subtotal_transaction, t.status) == ("t1", 150000, None, "FAILED")


def test_pagination_synonyms_and_derivations():
    p = Pagination.from_dict({"page": 3, "per_page": 10, "total": 25})
    assert (p.limit, p.total_pages, p.has_prev, p.has_next) == (10, 3, True, False)
    p = Pagination.from_dict({"page": 0, "limit": 0, "total": 4})
    assert (p.page, p.total_pages, p.has_next) == (1, 1, False)
    exact = {"page": 1, "limit": 10, "total": 1, "total_pages": 1, "has_prev": False, "has_next": False}
    assert Pagination.from_dict(exact) == Pagination(**exact)


def test_voucher_page_nested_data_shape():
    page = VoucherPage.from_dict({"success": True, "data": {"vouchers": [{"code": "HAVN-N"}],
                                                            "pagination": {"page": 1, "limit": 1, "total": 2}}})
    assert [v.code for v in page] == ["HAVN-N"]
    assert page.pagination.total_pages == 2 and page.pagination.has_next is True


def test_voucher_types_are_coerced_leniently():
    v = Voucher.from_dict({"value": "20.5", "usage_limit": "100", "active": "false", "is_valid": 1,
                           "associate": "nope", "saas_company_id": 8, "code": 123})
    assert (v.value, v.usage_limit, v.active, v.is_valid, v.associate, v.saas_company_id, v.code) == (
        20.5, 100, False, True, None, 8, "123")


def test_voucher_validation_truthiness():
    assert VoucherValidation(valid=True, status_code=200)
    assert not VoucherValidation(valid=False, status_code=404, reason="Voucher not found")


SANDBOX_ROW = {
    "success": True, "message": "User synced successfully", "user_created": True, "associate_created": False,
    "user_id": "usr_1", "referral_code": "HAVN-MX-001",
    "user": {"id": "usr_1", "email": "m1@example.com", "name": "M 1", "is_active": True, "role": "partner"},
    "associate": {"associate_id": "asc_0", "referral_code": "HAVN-MX-001", "is_active": True, "role": "partner"},
}


def test_rows_keep_havns_dicts_without_copying_and_errors_leave_raw_untouched():
    answer = {"success": True, "results": [SANDBOX_ROW], "referral_code": "HAVN-MX-001",
              "errors": [{"index": "3", "email": "x@y.co", "message": "dup"}]}
    result = BulkSyncResult.from_dict(answer)
    (row,) = result.results
    assert result.raw is answer and row.raw is SANDBOX_ROW
    assert row.user.raw is SANDBOX_ROW["user"] and row.associate.raw is SANDBOX_ROW["associate"]
    assert result.errors == [{"index": 3, "email": "x@y.co", "message": "dup", "error": "dup"}]
    assert answer["errors"] == [{"index": "3", "email": "x@y.co", "message": "dup"}]  # HAVN's own, as sent
    merged = BulkSyncResult.merge([(10, result)])
    assert merged.errors[0]["index"] == 13 and result.errors[0]["index"] == 3


def test_a_parsed_row_equals_the_same_row_built_field_by_field():
    row = SyncResult.from_dict(SANDBOX_ROW)
    built = SyncResult(success=True, message="User synced successfully", user_created=True,
                       user=User(id="usr_1", email="m1@example.com", name="M 1", is_active=True,
                                 raw=SANDBOX_ROW["user"]),
                       associate=Associate(associate_id="asc_0", referral_code="HAVN-MX-001", is_active=True,
                                           role="partner", raw=SANDBOX_ROW["associate"]),
                       referral_code="HAVN-MX-001", user_id="usr_1", raw=SANDBOX_ROW)
    assert row == built and repr(row) == repr(built)
    assert (row.email, row.user_id, row.associate.referral_code) == ("m1@example.com", "usr_1", "HAVN-MX-001")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        row.nope  # noqa: B018 - the read is the test


@pytest.mark.parametrize("cls", [Associate, User, SyncResult, BulkSummary, BulkSyncResult, Transaction,
                                 Commission, TransactionResult, Voucher, Pagination, VoucherPage])
def test_result_objects_are_slotted(cls):
    # No per-instance __dict__: thousands of bulk-sync rows stay small.
    assert not hasattr(cls(), "__dict__")
    assert set(cls.__slots__) == {f for f in cls.__dataclass_fields__}

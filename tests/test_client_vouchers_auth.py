"""vouchers.validate, vouchers.list and auth.login over loopback HTTP."""
from __future__ import annotations

import datetime

import pytest
from werkzeug.wrappers import Response

from _client_fixtures import *  # noqa: F401,F403 - fixtures
from _client_fixtures import Script, json_response
from flask_havn.errors import HAVNAPIError, HAVNAuthError, HAVNNotFoundError, HAVNValidationError

GET_SIG = "748a263298986af60d952005bd6587eb7fe36a5a9f1ddaf94ca4cb46729473cb"

VOUCHER = {"serial": "v1", "saas_company_id": 8, "associate_id": "assoc_1", "code": "HAVN-AQNEO-S08-ABC123",
           "type": "DISCOUNT_PERCENTAGE", "value": 2000, "usage_limit": 100, "current_usage": 3,
           "min_purchase": 5000, "max_purchase": None, "start_date": "2025-01-01", "end_date": "2025-12-31",
           "active": True, "client_type": "NEW_CUSTOMER", "currency": "USD", "is_expired": False,
           "is_valid": True, "remaining_usage": 97, "usage_percentage": 3.0, "associate": {"name": "MJ"}}

# -- validate ----------------------------------------------------------------------------


def test_validate_valid_with_empty_body(script: Script, make_client):
    script.reply(Response(b"", status=200))
    result = make_client().vouchers.validate("HAVN-AQNEO-S08-ABC123", amount=10000, currency="idr")
    assert result and result.valid is True and result.status_code == 200
    (seen,) = script.seen
    assert seen.path == "/api/v1/webhook/voucher/validate"
    assert seen.json == {"voucher_code": "HAVN-AQNEO-S08-ABC123", "amount": 10000, "currency": "IDR"}


def test_validate_code_only(script: Script, make_client):
    make_client().vouchers.validate(" HAVN-X ")
    assert script.seen[0].json == {"voucher_code": " HAVN-X "}  # sent as given, like HAVN's SDK


@pytest.mark.parametrize("status, body, reason", [
    (400, {"error": "VoucherInvalid", "message": "Voucher expired on 2025-01-01"}, "Voucher expired on 2025-01-01"),
    (404, None, "Voucher not found"),
    (422, {"message": "Minimum purchase is 5000"}, "Minimum purchase is 5000"),
    (400, {"error": "X"}, "Voucher invalid (expired, used up, or inactive)"),
])
def test_validate_refusals_are_answers_with_the_servers_reason(script: Script, make_client, status, body, reason):
    script.reply(json_response(body, status))
    result = make_client().vouchers.validate("HAVN-OLD-1", amount=100)
    assert not result
    assert result.valid is False and result.status_code == status and result.reason == reason
    assert result.raw == (body or {})
    assert len(script.seen) == 1


def test_validate_auth_and_server_errors_still_raise(script: Script, make_client):
    script.reply(json_response({"message": "bad signature"}, 401))
    with pytest.raises(HAVNAuthError):
        make_client().vouchers.validate("HAVN-X-1")
    script.reply(json_response({}, 500))
    with pytest.raises(HAVNAPIError) as info:
        make_client(max_retries=0).vouchers.validate("HAVN-X-1")
    assert info.value.status_code == 500


@pytest.mark.parametrize("args, field", [
    (("",), "voucher_code"),
    ((None,), "voucher_code"),
    (("V" * 101,), "voucher_code"),
    (("HAVN-X", 0), "amount"),
    (("HAVN-X", 1.5), "amount"),
    (("HAVN-X", 100, "BTC"), "currency"),
])
def test_validate_rules(script: Script, make_client, args, field):
    with pytest.raises(HAVNValidationError) as info:
        make_client().vouchers.validate(*args)
    assert info.value.field == field
    assert script.seen == []


# -- list --------------------------------------------------------------------------------


def test_list_query_signature_and_parsing(script: Script, make_client):
    script.reply(json_response({"success": True, "message": "Success", "data": [VOUCHER],
                                "pagination": {"page": 2, "limit": 5, "total": 6, "total_pages": 2,
                                               "has_prev": True, "has_next": False}}))
    page = make_client().vouchers.list(
        page=2, per_page=5, active=True, min_value=100, max_value=200, type="discount_fixed",
        sort_order="ASC", sort_by="code", currency="usd", search=" spring ", is_expired=False,
        start_date_from=datetime.date(2025, 1, 1), created_to="2025-06-30T12:00:00", client_type=None)
    (seen,) = script.seen
    assert seen.method == "GET" and seen.path == "/api/v1/webhook/vouchers"
    assert seen.headers["X-Signature"] == GET_SIG
    assert seen.args == {"page": "2", "per_page": "5", "active": "True", "min_value": "100",
                         "max_value": "200", "type": "DISCOUNT_FIXED", "sort_order": "asc", "sort_by": "code",
                         "currency": "USD", "search": "spring", "is_expired": "False",
                         "start_date_from": "2025-01-01", "created_to": "2025-06-30T12:00:00"}
    (voucher,) = list(page)
    assert voucher.code == "HAVN-AQNEO-S08-ABC123" and voucher.value == 2000 and voucher.max_purchase is None
    assert voucher.associate == {"name": "MJ"} and voucher.raw == VOUCHER
    assert page.pagination.page == 2 and page.pagination.has_prev is True and page.pagination.total == 6


def test_list_defaults(script: Script, make_client):
    make_client().vouchers.list()
    assert script.seen[0].args == {"page": "1", "per_page": "10"}


def test_list_tolerates_per_page_extra_keys_and_missing_voucher_keys(script: Script, make_client):
    script.reply(json_response({"success": True, "data": [{"code": "HAVN-A"}, {"unexpected": 1}, "junk"],
                                "pagination": {"page": 1, "per_page": 2, "total": 5, "cursor": "abc"},
                                "extra": True}))
    page = make_client().vouchers.list(per_page=2)
    assert [v.code for v in page.vouchers] == ["HAVN-A", None]
    p = page.pagination
    assert (p.page, p.limit, p.total, p.total_pages, p.has_prev, p.has_next) == (1, 2, 5, 3, False, True)


def test_list_without_pagination_object(script: Script, make_client):
    script.reply(json_response({"data": [VOUCHER]}))
    page = make_client().vouchers.list(per_page=7)
    assert page.success is False  # missing "success" defaults to False
    assert (page.pagination.limit, page.pagination.total, page.pagination.total_pages) == (7, 1, 1)


@pytest.mark.parametrize("kwargs, field", [
    ({"page": 0}, "page"),
    ({"page": "1"}, "page"),
    ({"per_page": 0}, "per_page"),
    ({"per_page": 101}, "per_page"),
    ({"per_page": True}, "per_page"),
    ({"sort_order": "up"}, "sort_order"),
    ({"sort_by": "price"}, "sort_by"),
    ({"type": "FREE"}, "type"),
    ({"client_type": "ALL"}, "client_type"),
    ({"active": "yes"}, "active"),
    ({"min_value": -1}, "min_value"),
    ({"usage_limit_to": "9"}, "usage_limit_to"),
    ({"min_value": 10, "max_value": 5}, "min_value"),
    ({"start_date_from": "2025-13-01"}, "start_date_from"),
    ({"end_date_to": "01/02/2025"}, "end_date_to"),
    ({"start_date_to": "2025-01-01T00:00:00"}, "start_date_to"),
    ({"created_from": "yesterday"}, "created_from"),
    ({"end_date_from": "2025-02-01", "end_date_to": "2025-01-01"}, "end_date_from"),
    ({"currency": "ABC"}, "currency"),
    ({"display_currency": 5}, "display_currency"),
    ({"search": "s" * 201}, "search"),
])
def test_list_rules(script: Script, make_client, kwargs, field):
    with pytest.raises(HAVNValidationError) as info:
        make_client().vouchers.list(**kwargs)
    assert info.value.field == field
    assert script.seen == []


def test_list_unknown_filter_lists_the_allowed_ones(script: Script, make_client):
    with pytest.raises(HAVNValidationError) as info:
        make_client().vouchers.list(colour="red")
    assert info.value.field == "colour"
    assert "sort_order" in info.value.message and "min_purchase_from" in info.value.message
    assert script.seen == []


# -- login -------------------------------------------------------------------------------


def test_login_returns_redirect_url(script: Script, make_client):
    script.reply(json_response({"success": True, "message": "Login successful - redirect user to provided URL",
                                "data": {"redirect_url": "https://app.havn.com/login?token=eyJ", "token": "eyJ",
                                         "expires_in": 300}}))
    url = make_client().auth.login("  Jane@Example.COM ")
    assert url == "https://app.havn.com/login?token=eyJ"
    (seen,) = script.seen
    assert seen.path == "/api/v1/webhook/login" and seen.json == {"email": "jane@example.com"}
    assert seen.headers["Accept"] == "application/json"


@pytest.mark.parametrize("body", [{"success": True}, {"data": {"redirect_url": ""}}, {"data": "x"}, None])
def test_login_without_url_is_an_api_error(script: Script, make_client, body):
    script.reply(json_response(body))
    with pytest.raises(HAVNAPIError, match="without a redirect_url"):
        make_client().auth.login("jane@example.com")


@pytest.mark.parametrize("email", ["jane", "", None, 42])
def test_login_email_rule(script: Script, make_client, email):
    with pytest.raises(HAVNValidationError) as info:
        make_client().auth.login(email)
    assert info.value.field == "email"
    assert script.seen == []


def test_login_unknown_user(script: Script, make_client):
    script.reply(json_response({"error": "NotFound", "message": "User not found"}, 404))
    with pytest.raises(HAVNNotFoundError, match="User not found"):
        make_client().auth.login("ghost@example.com")

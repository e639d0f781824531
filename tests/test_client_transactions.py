"""transactions.send: the wire payload, every validation rule, idempotency, the parsed result."""
from __future__ import annotations

import hashlib

import pytest

from _client_fixtures import *  # noqa: F401,F403 - fixtures
from _client_fixtures import SECRET, Script, json_response
from flask_havn.errors import HAVNNotFoundError, HAVNValidationError
from flask_havn.signing import canonical_json

VECTOR_SIG = "06abae1c59b0c6857d9b7ec769ad9d423cbae40c540e31d0a89812e18ee322c6"
PATH = "/api/v1/webhook/transaction"

RESPONSE = {
    "success": True, "message": "Transaction processed",
    "transaction": {"transaction_id": "txn_12345", "amount": 8000, "currency": "USD", "status": "completed",
                    "customer_type": "NEW_CUSTOMER", "acquisition_method": "REFERRAL_VOUCHER",
                    "subtotal_transaction": 10000, "subtotal_discount": 2000, "created_at": "2025-11-20T10:00:00Z"},
    "commissions": [
        {"commission_id": "comm_1", "associate_id": "assoc_1", "level": 1, "amount": 400, "percentage": 5.0,
         "type": "REFERRAL", "direction": "UP", "status": "PENDING"},
        {"commission_id": "comm_2", "associate_id": "assoc_0", "level": 2, "amount": 240, "percentage": 3.0,
         "type": "REFERRAL", "direction": "UP", "status": "PENDING"},
    ],
}

BASE = dict(amount=8000, customer_email="customer@example.com", payment_gateway_transaction_id="pi_1",
            payment_gateway="stripe")


def test_guide_example_keyword_for_keyword(script: Script, make_client):
    script.reply(json_response(RESPONSE, 201))
    client = make_client()
    result = client.transactions.send(
        amount=8000,
        referral_code="HAVN-MJ-001",
        currency="USD",
        customer_email="customer@example.com",
        payment_gateway_transaction_id="stripe_1234",
        payment_gateway="STRIPE",
        promo_code="HAVN-AQNEO-S08-ABC123",
        subtotal_transaction=10000,
    )
    (seen,) = script.seen
    assert seen.path == PATH
    assert seen.json == {
        "amount": 8000, "payment_gateway_transaction_id": "stripe_1234", "payment_gateway": "STRIPE",
        "customer_email": "customer@example.com", "referral_code": "HAVN-MJ-001",
        "promo_code": "HAVN-AQNEO-S08-ABC123", "currency": "USD", "subtotal_transaction": 10000,
    }
    assert result.success is True and result.message == "Transaction processed"
    assert result.transaction.transaction_id == "txn_12345"
    assert result.transaction.subtotal_discount == 2000
    assert [c.amount for c in result.commissions] == [400, 240]
    assert result.commission_distributed is True
    assert result.total_commission == 640


def test_contract_signature_vector_through_the_client(script: Script, make_client):
    make_client().transactions.send(
        10000, referral_code="HAVN-MJ-001", currency="USD", customer_email="customer@example.com",
        payment_gateway="STRIPE", payment_gateway_transaction_id="stripe_txn_001")
    (seen,) = script.seen
    assert seen.body == (b'{"amount":10000,"currency":"USD","customer_email":"customer@example.com",'
                         b'"payment_gateway":"STRIPE","payment_gateway_transaction_id":"stripe_txn_001",'
                         b'"referral_code":"HAVN-MJ-001"}')
    assert seen.headers["X-Signature"] == VECTOR_SIG


def test_normalisation_and_optional_fields(script: Script, make_client):
    make_client().transactions.send(
        1500, referral_code="  havn-mj-001 ", currency=" idr ", customer_email="Buyer@Example.com",
        payment_gateway_transaction_id="pg-9", payment_gateway=" midtrans ", promo_code=" havn-x-1 ",
        customer_type=" recurring ", invoice_id="  INV-7 ", transaction_type=" SUBSCRIPTION ",
        description="Pro plan", custom_fields={"plan": "pro", "seats": 3, "trial": False},
        customer_id="cus_1",
    )
    assert script.seen[0].json == {
        "amount": 1500, "referral_code": "HAVN-MJ-001", "currency": "IDR",
        "customer_email": "Buyer@Example.com",  # not normalised, like HAVN's SDK
        "payment_gateway_transaction_id": "pg-9", "payment_gateway": "MIDTRANS",
        "promo_code": "havn-x-1", "customer_type": "RECURRING", "invoice_id": "INV-7",
        "transaction_type": "SUBSCRIPTION", "description": "Pro plan",
        "custom_fields": {"plan": "pro", "seats": 3, "trial": False},
        "server_side_conversion": True,  # non-USD and the caller did not say
    }


def test_platform_revenue_without_referral_code_and_blank_optionals_omitted(script: Script, make_client):
    make_client().transactions.send(**BASE, invoice_id="   ", customer_type="  ", transaction_type="",
                                    description=" ")
    assert script.seen[0].json == {"amount": 8000, "currency": "USD", "customer_email": "customer@example.com",
                                   "payment_gateway_transaction_id": "pi_1", "payment_gateway": "STRIPE"}


@pytest.mark.parametrize("promo", ["WELCOME10", "DISC50", "havn_x", "  "])
def test_local_promo_codes_are_dropped(script: Script, make_client, promo):
    make_client().transactions.send(**BASE, referral_code="HAVN-MJ-001", promo_code=promo)
    assert "promo_code" not in script.seen[0].json


@pytest.mark.parametrize("currency, flag, expected", [
    ("USD", None, None), ("USD", True, True), ("USD", False, None),
    ("EUR", None, True), ("EUR", False, None), ("EUR", True, True),
])
def test_server_side_conversion(script: Script, make_client, currency, flag, expected):
    make_client().transactions.send(**BASE, currency=currency, server_side_conversion=flag)
    assert script.seen[0].json.get("server_side_conversion") == expected
    assert script.seen[0].json["currency"] == currency


@pytest.mark.parametrize("is_recurring, expected", [(True, "RECURRING"), (False, "NEW_CUSTOMER")])
def test_is_recurring_maps_to_customer_type(script: Script, make_client, is_recurring, expected):
    make_client().transactions.send(**BASE, is_recurring=is_recurring)
    body = script.seen[0].json
    assert body["customer_type"] == expected and "is_recurring" not in body


def test_is_recurring_agreeing_with_customer_type_is_fine(script: Script, make_client):
    make_client().transactions.send(**BASE, is_recurring=True, customer_type="recurring")
    assert script.seen[0].json["customer_type"] == "RECURRING"


def test_default_payment_gateway_fallback(script: Script, make_client):
    client = make_client()
    client.transactions.send(amount=100, customer_email="a@b.co", payment_gateway_transaction_id="x1",
                             default_payment_gateway="manual")
    client.transactions.send(amount=100, customer_email="a@b.co", payment_gateway_transaction_id="x2",
                             payment_gateway="paypal", default_payment_gateway="manual")
    assert [s.json["payment_gateway"] for s in script.seen] == ["MANUAL", "PAYPAL"]


BAD = [
    ({"amount": 0}, "amount"),
    ({"amount": -5}, "amount"),
    ({"amount": 10.5}, "amount"),
    ({"amount": "100"}, "amount"),
    ({"amount": True}, "amount"),
    ({"amount": 1_000_000_001}, "amount"),
    ({"referral_code": "AB"}, "referral_code"),
    ({"referral_code": "   "}, "referral_code"),
    ({"referral_code": "X" * 51}, "referral_code"),
    ({"referral_code": 123}, "referral_code"),
    ({"currency": "XXX"}, "currency"),
    ({"currency": None}, "currency"),
    ({"payment_gateway_transaction_id": None}, "payment_gateway_transaction_id"),
    ({"payment_gateway_transaction_id": "  "}, "payment_gateway_transaction_id"),
    ({"payment_gateway_transaction_id": "p" * 201}, "payment_gateway_transaction_id"),
    ({"payment_gateway_transaction_id": 42}, "payment_gateway_transaction_id"),
    ({"payment_gateway": None}, "payment_gateway"),
    ({"payment_gateway": ""}, "payment_gateway"),
    ({"payment_gateway": "G" * 101}, "payment_gateway"),
    ({"customer_email": None}, "customer_email"),
    ({"customer_email": "not-an-email"}, "customer_email"),
    ({"customer_email": "a@b"}, "customer_email"),
    ({"customer_email": " a@b.co"}, "customer_email"),
    ({"promo_code": "HAVN-" + "x" * 100}, "promo_code"),
    ({"promo_code": 5}, "promo_code"),
    ({"subtotal_transaction": 7999}, "subtotal_transaction"),
    ({"subtotal_transaction": 0}, "subtotal_transaction"),
    ({"subtotal_transaction": "10000"}, "subtotal_transaction"),
    ({"customer_type": "VIP"}, "customer_type"),
    ({"customer_type": 1}, "customer_type"),
    ({"is_recurring": "yes"}, "is_recurring"),
    ({"is_recurring": True, "customer_type": "NEW_CUSTOMER"}, "is_recurring"),
    ({"is_recurring": False, "customer_type": "RECURRING"}, "is_recurring"),
    ({"custom_fields": {"a": 1, "b": 2, "c": 3, "d": 4}}, "custom_fields"),
    ({"custom_fields": {"a": None}}, "custom_fields.a"),
    ({"custom_fields": {"a": [1]}}, "custom_fields.a"),
    ({"custom_fields": {1: "x"}}, "custom_fields"),
    ({"custom_fields": "a=1"}, "custom_fields"),
    ({"invoice_id": 77}, "invoice_id"),
    ({"invoice_id": "I" * 101}, "invoice_id"),
    ({"transaction_type": ["SALE"]}, "transaction_type"),
    ({"description": 3}, "description"),
    ({"server_side_conversion": "true"}, "server_side_conversion"),
    ({"server_side_conversion": 1}, "server_side_conversion"),
    ({"idempotency_key": "  "}, "idempotency_key"),
    ({"idempotency_key": "k" * 256}, "idempotency_key"),
]


@pytest.mark.parametrize("override, field", BAD)
def test_each_rule_names_the_field_and_sends_nothing(script: Script, make_client, override, field):
    kw = dict(BASE, referral_code="HAVN-MJ-001")
    kw.update(override)
    with pytest.raises(HAVNValidationError) as info:
        make_client().transactions.send(**kw)
    assert info.value.field == field
    assert info.value.status_code == 400
    assert script.seen == []


def test_missing_gateway_id_message_tells_what_to_do(script: Script, make_client):
    kw = dict(BASE)
    del kw["payment_gateway_transaction_id"]
    with pytest.raises(HAVNValidationError, match="pass the payment gateway's own id"):
        make_client().transactions.send(**kw)
    assert script.seen == []


def test_idempotency_key_is_derived_from_gateway_id_and_stable_across_clients(script: Script, make_client):
    make_client().transactions.send(**BASE)
    make_client().transactions.send(**dict(BASE, amount=9000))  # a re-send, later, from another client
    make_client().transactions.send(**dict(BASE, payment_gateway_transaction_id="pi_2"))
    keys = [s.headers["Idempotency-Key"] for s in script.seen]
    assert keys[0] == "txn-" + hashlib.sha256(b"pi_1").hexdigest()[:32]
    assert keys[0] == keys[1] != keys[2]


def test_idempotency_key_is_kept_across_retries(script: Script, make_client, clock):
    script.reply(json_response({}, 502), json_response(RESPONSE))
    make_client().transactions.send(**BASE)
    assert len(script.seen) == 2
    assert script.seen[0].headers["Idempotency-Key"] == script.seen[1].headers["Idempotency-Key"]
    assert script.seen[0].body == script.seen[1].body
    assert clock.sleeps == [0.5]


def test_caller_idempotency_key_wins(script: Script, make_client):
    make_client().transactions.send(**BASE, idempotency_key=" order-77 ")
    assert script.seen[0].headers["Idempotency-Key"] == "order-77"


def test_body_is_signed_canonical_bytes(script: Script, make_client):
    from flask_havn.signing import sign_body

    make_client().transactions.send(**BASE, custom_fields={"z": 1, "a": "é"})
    seen = script.seen[0]
    assert seen.body == canonical_json(seen.json)
    assert seen.headers["X-Signature"] == sign_body(SECRET, seen.body)


def test_unknown_referral_code_is_a_not_found_error(script: Script, make_client):
    script.reply(json_response({"error": "NotFound", "message": "Referral code HAVN-ZZ-999 not found"}, 404))
    with pytest.raises(HAVNNotFoundError) as info:
        make_client().transactions.send(**BASE, referral_code="HAVN-ZZ-999")
    assert info.value.error_type == "NotFound"
    assert "HAVN-ZZ-999 not found" in info.value.message
    assert len(script.seen) == 1


def test_tolerant_result_with_missing_and_extra_keys(script: Script, make_client):
    script.reply(json_response({"success": True, "surprise": [1], "total_commission": 999,
                                "commission_distributed": False,
                                "transaction": {"transaction_id": "t1", "new_field": {"x": 1}},
                                "commissions": [{"amount": 5, "rate": 0.05, "extra": True}, "junk", None]}))
    result = make_client().transactions.send(**BASE)
    assert result.transaction.transaction_id == "t1" and result.transaction.amount is None
    assert len(result.commissions) == 1 and result.commissions[0].percentage == 5.0
    assert result.total_commission == 999 and result.commission_distributed is False
    assert result.raw["surprise"] == [1]


def test_empty_success_body(script: Script, make_client):
    from werkzeug.wrappers import Response

    script.reply(Response(b"", status=200))
    result = make_client().transactions.send(**BASE)
    assert result.success is True and result.commissions == [] and result.total_commission == 0
    assert result.commission_distributed is False


def test_client_level_default_gateway_is_the_last_fallback(script: Script, make_client):
    client = make_client(default_payment_gateway="xendit")
    client.transactions.send(amount=100, customer_email="a@b.co", payment_gateway_transaction_id="x1")
    client.transactions.send(amount=100, customer_email="a@b.co", payment_gateway_transaction_id="x2",
                             default_payment_gateway="manual")
    client.transactions.send(amount=100, customer_email="a@b.co", payment_gateway_transaction_id="x3",
                             payment_gateway="stripe")
    assert [s.json["payment_gateway"] for s in script.seen] == ["XENDIT", "MANUAL", "STRIPE"]

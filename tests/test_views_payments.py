"""Payment routes: record, show, complete, retry (in-process sandbox)."""
from __future__ import annotations

from typing import Any

import pytest

from _projects_helpers import FAST_RETRY, allow, dump, quiet, sandbox_of, synced_chain


@pytest.fixture
def make_host(make_host: Any) -> Any:
    return quiet(make_host)


def _payments(host: Any) -> int:
    with host.app.app_context():
        return host.havn.models.Payment.query.count()


def _host(make_host: Any, config: Any = None) -> Any:
    host = make_host(config)
    allow(host)
    return host


FULL = {
    "amount_cents": 12345, "currency": "usd", "status": "completed", "invoice_id": "INV-9",
    "customer_id": "cus_1", "customer_email": "buyer@example.com", "voucher_code": "LOCAL10",
    "transaction_type": "SUBSCRIPTION", "payment_gateway": "stripe", "payment_gateway_transaction_id": "pi_9",
    "custom_fields": {"plan": "pro"}, "subtotal_cents": 13000,
}


def test_record_a_completed_payment(make_host: Any) -> None:
    host = _host(make_host)
    _, a_code, b_id, b_code = synced_chain(host)
    client = host.app.test_client()
    response = client.post("/havn/payments", json={"project_id": b_id, **FULL})
    assert response.status_code == 201
    body = response.get_json()
    assert {k: body[k] for k in ("amount_cents", "currency", "payment_gateway", "subtotal_cents", "delivery_state",
                                 "attempts", "total_commission")} == \
        {"amount_cents": 12345, "currency": "USD", "payment_gateway": "STRIPE", "subtotal_cents": 13000,
         "delivery_state": "sent", "attempts": 1, "total_commission": 617}
    assert body["commissions"][0]["referral_code"] == a_code
    (txn,) = dump(sandbox_of(host))["transactions"]
    assert (txn["referral_code"], txn["invoice_id"], txn["promo_code"], txn["subtotal_transaction"]) == \
        (a_code, "INV-9", None, 13000)  # a local voucher is not sent to HAVN
    assert txn["referral_code"] != b_code

    shown = client.get(f"/havn/payments/{body['id']}")
    assert shown.status_code == 200 and shown.get_json() == body
    again = client.post("/havn/payments", json={"project_id": b_id, **FULL})
    assert again.status_code == 200 and again.get_json()["id"] == body["id"]
    clash = client.post("/havn/payments", json={"project_id": b_id, **FULL, "amount_cents": 1})
    assert clash.status_code == 409 and clash.get_json()["error"] == "conflict"
    assert _payments(host) == 1
    assert len(dump(sandbox_of(host))["transactions"]) == 1


@pytest.mark.parametrize("change, fields", [
    ({"amount_cents": None}, {"amount_cents"}),
    ({"amount_cents": "100"}, {"amount_cents"}),
    ({"amount_cents": 1.5}, {"amount_cents"}),
    ({"amount_cents": -1}, {"amount_cents"}),
    ({"currency": "EURO"}, {"currency"}),
    ({"status": "paid"}, {"status"}),
    ({"customer_email": None}, {"customer_email"}),
    ({"customer_email": "<script>@x"}, {"customer_email"}),
    ({"custom_fields": {"a": {"nested": 1}}}, {"custom_fields.a"}),
    ({"custom_fields": "x"}, {"custom_fields"}),
    ({"invoice_id": ["INV"]}, {"invoice_id"}),
    ({"subtotal_cents": 100}, {"subtotal_cents"}),
    ({"payment_gateway_transaction_id": ""}, {"payment_gateway_transaction_id"}),
    ({"project_id": 999}, {"project_id"}),
    ({"project_id": "1"}, {"project_id"}),
    ({"project_id": None}, {"project_id"}),
    ({"referral_code": "HAVN-AA-001"}, {"referral_code"}),
    ({"amount_cents": 0, "currency": "", "customer_email": 5}, {"amount_cents", "currency", "customer_email"}),
])
def test_bad_payments_are_400_and_write_nothing(make_host: Any, change: dict, fields: set) -> None:
    host = _host(make_host)
    _, _, b_id, _ = synced_chain(host)
    body = {"project_id": b_id, **FULL, **change}
    response = host.app.test_client().post("/havn/payments", json=body)
    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == fields
    assert _payments(host) == 0
    assert dump(sandbox_of(host))["counts"]["transactions"] == 0


REQUIRED = {
    "project_id": "is required: the id of the project the payment belongs to",
    "amount_cents": "is required: an integer amount in minor units (e.g. cents)",
    "customer_email": "is required: HAVN needs the paying customer's email address",
}


def test_required_payment_fields(make_host: Any) -> None:
    host = _host(make_host)
    client = host.app.test_client()
    email = {"customer_email": "buyer@example.com"}
    assert client.post("/havn/payments", json={"amount_cents": 1, **email}).get_json()["errors"] == \
        {"project_id": REQUIRED["project_id"]}
    assert client.post("/havn/payments", json={"project_id": 1, **email}).get_json()["errors"] == \
        {"amount_cents": REQUIRED["amount_cents"],
         "project_id": "no project with id 1; create it first with havn.projects.create() or POST /projects"}
    assert _payments(host) == 0


def test_an_empty_payment_reports_every_missing_field_at_once(make_host: Any) -> None:
    host = _host(make_host)
    response = host.app.test_client().post("/havn/payments", json={})
    assert response.status_code == 400
    body = response.get_json()
    assert body["errors"] == REQUIRED
    assert body["message"] == f"project_id: {REQUIRED['project_id']} (and 2 more fields: see .errors)"
    assert _payments(host) == 0


def test_missing_and_invalid_fields_are_reported_together(make_host: Any) -> None:
    host = _host(make_host)
    response = host.app.test_client().post("/havn/payments", json={
        "currency": "EURO", "status": "paid", "customer_email": "nope", "subtotal_cents": -1})
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert set(errors) == {"project_id", "amount_cents", "currency", "status", "customer_email", "subtotal_cents"}
    assert (errors["project_id"], errors["amount_cents"]) == (REQUIRED["project_id"], REQUIRED["amount_cents"])
    assert _payments(host) == 0


def test_pending_then_complete(make_host: Any) -> None:
    host = _host(make_host)
    _, _, b_id, _ = synced_chain(host)
    client = host.app.test_client()
    pending = client.post("/havn/payments", json={"project_id": b_id, "amount_cents": 500, "status": "pending",
                                                  "customer_email": "p@example.com"}).get_json()
    assert (pending["status"], pending["delivery_state"]) == ("pending", "pending")
    assert dump(sandbox_of(host))["counts"]["transactions"] == 0
    done = client.post(f"/havn/payments/{pending['id']}/complete")
    assert done.status_code == 200
    assert (done.get_json()["status"], done.get_json()["delivery_state"]) == ("completed", "sent")
    assert client.post("/havn/payments/999/complete").status_code == 404
    refunded = client.post("/havn/payments", json={"project_id": b_id, "amount_cents": 500, "status": "refunded",
                                                   "customer_email": "p@example.com"}).get_json()
    refused = client.post(f"/havn/payments/{refunded['id']}/complete")
    assert refused.status_code == 400 and "status" in refused.get_json()["errors"]


def test_failed_delivery_is_201_then_retry(make_host: Any) -> None:
    host = _host(make_host, {**FAST_RETRY, "HAVN_DELIVERY_BACKOFF": 60})
    _, _, b_id, _ = synced_chain(host)
    client = host.app.test_client()
    sandbox_of(host).faults.configure({"seed": 4, "rates": {"500": 1.0}})
    recorded = client.post("/havn/payments", json={"project_id": b_id, "amount_cents": 800,
                                                   "customer_email": "f@example.com"})
    assert recorded.status_code == 201  # the host's checkout never sees HAVN's trouble
    body = recorded.get_json()
    assert body["delivery_state"] == "failed" and body["next_attempt_at"] and "500" in body["last_error"]
    sandbox_of(host).faults.clear()
    retried = client.post(f"/havn/payments/{body['id']}/retry")
    assert retried.status_code == 200 and retried.get_json()["delivery_state"] == "sent"
    twice = client.post(f"/havn/payments/{body['id']}/retry")
    assert twice.status_code == 409 and twice.get_json()["error"] == "conflict"
    assert client.post("/havn/payments/4242/retry").status_code == 404
    assert client.get("/havn/payments/4242").status_code == 404


def test_worker_mode_answers_pending(make_host: Any) -> None:
    host = _host(make_host, {"HAVN_DELIVERY": "worker"})
    _, _, b_id, _ = synced_chain(host)
    body = host.app.test_client().post("/havn/payments", json={"project_id": b_id, "amount_cents": 800,
                                                               "customer_email": "w@example.com"}).get_json()
    assert (body["delivery_state"], body["attempts"]) == ("pending", 0)
    assert dump(sandbox_of(host))["counts"]["transactions"] == 0


@pytest.mark.parametrize("first, again", [
    ("completed", "refunded"), ("completed", "pending"), ("completed", "cancelled"),
    ("pending", "refunded"), ("pending", "failed"), ("refunded", "completed"),
])
def test_reposting_a_known_payment_with_another_status_is_409(make_host: Any, first: str, again: str) -> None:
    host = _host(make_host)
    _, _, b_id, _ = synced_chain(host)
    client = host.app.test_client()
    body = {"project_id": b_id, **FULL, "status": first}
    recorded = client.post("/havn/payments", json=body)
    assert recorded.status_code == 201
    payment_id = recorded.get_json()["id"]
    sent = dump(sandbox_of(host))["counts"]["transactions"]
    clash = client.post("/havn/payments", json={**body, "status": again})
    assert clash.status_code == 409
    answer = clash.get_json()
    assert answer["error"] == "conflict"
    assert f"payment {payment_id} with status {first}" in answer["message"]
    assert f"status changes are not accepted by re-posting it as {again}" in answer["message"]
    shown = client.get(f"/havn/payments/{payment_id}").get_json()
    assert shown["status"] == first and shown["updated_at"] == recorded.get_json()["updated_at"]
    assert _payments(host) == 1
    assert dump(sandbox_of(host))["counts"]["transactions"] == sent


@pytest.mark.parametrize("first, again, status, delivery", [
    ("pending", "pending", "pending", "pending"),
    ("pending", "completed", "completed", "sent"),  # the one change a re-post makes: it was paid
    ("refunded", "refunded", "refunded", "pending"),
])
def test_reposting_a_known_payment_with_the_same_or_completed_status_is_200(
        make_host: Any, first: str, again: str, status: str, delivery: str) -> None:
    host = _host(make_host)
    _, _, b_id, _ = synced_chain(host)
    client = host.app.test_client()
    body = {"project_id": b_id, **FULL, "status": first}
    payment_id = client.post("/havn/payments", json=body).get_json()["id"]
    again_answer = client.post("/havn/payments", json={**body, "status": again})
    assert again_answer.status_code == 200
    assert (again_answer.get_json()["id"], again_answer.get_json()["status"],
            again_answer.get_json()["delivery_state"]) == (payment_id, status, delivery)
    assert _payments(host) == 1

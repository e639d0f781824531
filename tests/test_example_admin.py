"""ShopEasy mounts the HAVN operator console at /admin behind its operator sign-in (server side)."""
from __future__ import annotations

import re
import sys
from typing import Any, Iterator

import pytest

if sys.version_info < (3, 10):  # Flask-Admin 2 needs 3.10; ShopEasy then runs without its console
    pytest.skip("the operator console needs Flask-Admin 2, which needs Python 3.10+", allow_module_level=True)

from test_example_app import Shop, _build  # noqa: E402

PASSWORD = "correct horse battery staple"


@pytest.fixture
def shop(tmp_path: Any) -> Iterator[Shop]:
    """ShopEasy with an operator password and a sandbox that refuses nothing until told to."""
    yield from _build(tmp_path, HAVN_SANDBOX_WEBHOOK_URL=None, SHOPEASY_OPERATOR_PASSWORD=PASSWORD,
                      HAVN_DELIVERY_MAX_ATTEMPTS=1)


def _sign_in(shop: Shop, password: str = PASSWORD) -> Any:
    response = shop.post("/operator/sign-in", {"password": password})
    shop._token = None  # a sign-in starts a fresh session (and so a fresh CSRF token)
    return response


def test_the_console_and_the_json_routes_are_closed_until_an_operator_signs_in(shop: Shop) -> None:
    assert shop.client.get("/admin/havn/dashboard/").status_code == 403
    assert shop.client.get("/havn/projects").status_code == 403
    refused = _sign_in(shop, "guess")
    assert refused.status_code == 403 and "not the operator password" in refused.get_data(as_text=True)
    assert shop.client.get("/admin/havn/dashboard/").status_code == 403
    response = _sign_in(shop)
    assert response.status_code == 302 and response.location.endswith("/admin/havn/dashboard/")
    assert shop.client.get("/admin/havn/dashboard/").status_code == 200
    assert shop.client.get("/havn/projects").status_code == 200
    assert shop.post("/operator/sign-out", {}).status_code == 302
    assert shop.client.get("/admin/havn/dashboard/").status_code == 403


def test_without_a_password_sign_in_is_off(tmp_path: Any) -> None:
    for shop in _build(tmp_path, HAVN_SANDBOX_WEBHOOK_URL=None):
        assert "Operator sign-in is off" in shop.client.get("/operator/sign-in").get_data(as_text=True)
        assert _sign_in(shop, "").status_code == 403
        assert shop.client.get("/admin/").status_code == 403


def test_an_operator_requeues_a_dead_payment_through_shopeasys_csrf_protection(shop: Shop) -> None:
    a = shop.create_project("Acme Analytics")
    shop.sync_owner(a, "ann@acme.example", "Ann Acme")
    shop.sandbox().faults.configure({"seed": 1, "rates": {"500": 1.0}})
    shop.pay(a, "42.00")
    shop.sandbox().faults.clear()
    Payment = shop.models.Payment
    (payment,) = shop.rows(Payment)
    assert payment.delivery_state == "dead"
    _sign_in(shop)
    listed = shop.client.get("/admin/havn/payments/?flt0_delivery_state_equals=dead").get_data(as_text=True)
    assert "42.00 USD" in listed
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', listed).group(1)
    action = {"action": "requeue_dead", "rowid": str(payment.id)}
    assert shop.client.post("/admin/havn/payments/action/", data=action).status_code == 400  # CSRFProtect: no token
    done = shop.client.post("/admin/havn/payments/action/", data={"csrf_token": token, **action},
                            follow_redirects=True).get_data(as_text=True)
    assert f"Payment {payment.id}: requeued and delivered" in done
    (payment,) = shop.rows(Payment)
    assert payment.delivery_state == "sent"

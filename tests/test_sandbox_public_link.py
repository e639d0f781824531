"""The sandbox's public referral link, GET /r/<slug>?ref=&vc= (contract §8), and its settings and control route."""
from __future__ import annotations

from typing import Any, Dict, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from flask_havn.errors import HAVNConfigError
from flask_havn.sandbox import create_app
from flask_havn.sandbox.app import get_state

LOGIN = "https://shop.example/login?lang=en"


@pytest.fixture
def sandbox() -> Iterator[FlaskClient]:
    app = create_app({"HAVN_SANDBOX_PUBLIC_REDIRECT_SLUG": "shopeasy", "HAVN_SANDBOX_PUBLIC_AUTH_REDIRECT_URL": LOGIN,
                      "HAVN_SANDBOX_SEED": 3})
    get_state(app).backend.seed({
        "associates": [{"name": "Mike Jones", "referral_code": "HAVN-MJ-001"}],
        "vouchers": [
            {"associate_code": "HAVN-MJ-001", "code": "HAVN-MJ-GOOD", "type": "DISCOUNT_PERCENTAGE", "value": 2000},
            {"associate_code": "HAVN-MJ-001", "code": "HAVN-MJ-OLD", "type": "DISCOUNT_PERCENTAGE", "value": 2000,
             "start_date": "2020-01-01", "end_date": "2020-12-31"},
            {"associate_code": "HAVN-MJ-001", "code": "HAVN-MJ-USED", "type": "DISCOUNT_PERCENTAGE", "value": 2000,
             "usage_limit": 1},
            {"associate_code": "HAVN-MJ-001", "code": "HAVN-MJ-OFF", "type": "DISCOUNT_PERCENTAGE", "value": 2000,
             "active": False},
        ],
    })
    used = get_state(app).backend.transaction({  # the one use of HAVN-MJ-USED
        "amount": 8000, "subtotal_transaction": 10000, "payment_gateway_transaction_id": "pi_use",
        "payment_gateway": "STRIPE", "customer_email": "first@example.com", "referral_code": "HAVN-MJ-001",
        "promo_code": "HAVN-MJ-USED", "currency": "USD"})
    assert used.status == 201
    yield app.test_client()
    get_state(app).close()


def _target(response: Any) -> Dict[str, Any]:
    parts = urlsplit(response.headers["Location"])
    return {"at": f"{parts.scheme}://{parts.netloc}{parts.path}", "query": parse_qs(parts.query)}


def test_a_valid_link_redirects_to_the_login_page_with_ref_and_vc(sandbox: FlaskClient) -> None:
    response = sandbox.get("/r/shopeasy?ref=havn-mj-001&vc=HAVN-MJ-GOOD")
    assert response.status_code == 302
    assert _target(response) == {"at": "https://shop.example/login",
                                 "query": {"lang": ["en"], "ref": ["HAVN-MJ-001"], "vc": ["HAVN-MJ-GOOD"]}}


def test_a_local_voucher_passes_through(sandbox: FlaskClient) -> None:
    response = sandbox.get("/r/shopeasy?ref=HAVN-MJ-001&vc=DISC50")
    assert response.status_code == 302 and _target(response)["query"]["vc"] == ["DISC50"]


@pytest.mark.parametrize("voucher", ["HAVN-MJ-OLD", "HAVN-MJ-USED", "HAVN-MJ-OFF"])
def test_an_expired_used_up_or_inactive_voucher_still_redirects_without_vc(sandbox: FlaskClient, voucher: str) -> None:
    response = sandbox.get(f"/r/shopeasy?ref=HAVN-MJ-001&vc={voucher}")
    assert response.status_code == 302
    assert _target(response)["query"] == {"lang": ["en"], "ref": ["HAVN-MJ-001"]}


@pytest.mark.parametrize("path, status, field", [
    ("/r/shopeasy", 400, "ref"),
    ("/r/shopeasy?ref=%20", 400, "ref"),
    ("/r/shopeasy?vc=HAVN-MJ-GOOD", 400, "ref"),
    ("/r/other?ref=HAVN-MJ-001", 404, "slug"),
    ("/r/shopeasy?ref=HAVN-NO-404", 404, "ref"),
])
def test_errors(sandbox: FlaskClient, path: str, status: int, field: str) -> None:
    response = sandbox.get(path)
    assert response.status_code == status and "Location" not in response.headers
    assert response.json["field"] == field and response.json["message"]


def test_without_a_configured_login_page_the_link_is_404() -> None:
    app = create_app({})
    get_state(app).backend.seed({"associates": [{"name": "Mike Jones", "referral_code": "HAVN-MJ-001"}]})
    response = app.test_client().get("/r/sandbox?ref=HAVN-MJ-001")
    assert response.status_code == 404
    get_state(app).close()


def test_the_control_route_changes_the_link_and_reset_restores_it(sandbox: FlaskClient) -> None:
    answer = sandbox.put("/_sandbox/public-link", json={"slug": "newname", "redirect_url": "http://127.0.0.1:5000/signup"})
    assert answer.status_code == 200 and answer.json == {"slug": "newname", "redirect_url": "http://127.0.0.1:5000/signup"}
    assert sandbox.get("/r/shopeasy?ref=HAVN-MJ-001").status_code == 404
    response = sandbox.get("/r/newname?ref=HAVN-MJ-001")
    assert response.headers["Location"] == "http://127.0.0.1:5000/signup?ref=HAVN-MJ-001"
    assert sandbox.post("/_sandbox/reset", json={}).status_code == 200
    assert sandbox.get("/r/newname?ref=HAVN-MJ-001").status_code == 404  # the configured slug again


@pytest.mark.parametrize("body, field", [({"slug": "Bad Slug"}, "slug"), ({"redirect_url": "javascript:alert(1)"},
                                                                         "redirect_url"),
                                         ({"redirect_url": "/relative"}, "redirect_url")])
def test_bad_control_input_is_refused_and_changes_nothing(sandbox: FlaskClient, body: Dict[str, Any],
                                                          field: str) -> None:
    answer = sandbox.put("/_sandbox/public-link", json=body)
    assert answer.status_code == 400 and answer.json["field"] == field
    assert sandbox.get("/r/shopeasy?ref=HAVN-MJ-001").status_code == 302


@pytest.mark.parametrize("key, value", [("HAVN_SANDBOX_PUBLIC_REDIRECT_SLUG", "UPPER"),
                                        ("HAVN_SANDBOX_PUBLIC_AUTH_REDIRECT_URL", "ftp://x.example/")])
def test_bad_settings_are_refused(key: str, value: str) -> None:
    with pytest.raises(HAVNConfigError, match=key):
        create_app({key: value})

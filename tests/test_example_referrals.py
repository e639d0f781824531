"""ShopEasy's referral link path with the test client: share box, /r/<slug>, sign-up, first and second checkout."""
from __future__ import annotations

import re
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from _projects_helpers import dump
from test_example_app import Shop, _build, text


@pytest.fixture
def shop(tmp_path: Any) -> Iterator[Shop]:
    yield from _build(tmp_path, HAVN_SANDBOX_WEBHOOK_URL=None)


def _share_link(shop: Shop, project_id: int) -> str:
    html = text(shop.client.get(f"/projects/{project_id}"))
    return re.search(r'id="share-link" href="([^"]+)"', html).group(1).replace("&amp;", "&")


def test_a_link_leads_to_signup_under_the_upline_and_only_the_first_payment_gets_the_voucher(shop: Shop) -> None:
    a = shop.create_project("Acme Analytics")
    code_a = shop.sync_owner(a, "ann@acme.example", "Ann Acme")
    link = _share_link(shop, a)
    assert parse_qs(urlsplit(link).query) == {"ref": [code_a]}  # no voucher yet
    assert shop.post(f"/projects/{a}/welcome-voucher", {}).status_code == 302
    voucher = code_a + "-WELCOME"
    link = _share_link(shop, a)
    assert urlsplit(link).path == "/havn-link/r/shopeasy"
    assert parse_qs(urlsplit(link).query) == {"ref": [code_a], "vc": [voucher]}

    # HAVN (the sandbox, through ShopEasy) sends the visitor to the sign-up page, which captures the link.
    landing = shop.client.get(link)
    assert landing.status_code == 302
    assert landing.location == f"http://localhost/signup?ref={code_a}&vc={voucher}"
    page = shop.client.get(landing.location)
    assert shop.client.get_cookie("havn_referral") is not None
    assert f"You were invited by <strong>Acme Analytics</strong> <code>{code_a}</code>" in text(page)

    signed_up = shop.post("/signup", {"project_name": "Bolt Bikes", "email": "bo@bolt.example", "name": "Bo Bolt"})
    assert signed_up.status_code == 302
    b = int(signed_up.location.rsplit("/", 1)[1])
    assert shop.client.get_cookie("havn_referral") is None
    [project_b] = [p for p in shop.rows(shop.models.Project) if p.id == b]
    assert (project_b.upline_referral_code, project_b.referral_voucher_code, project_b.sync_state) == \
        (code_a, voucher, "synced")

    first = text(shop.client.get(f"/checkout?project={b}"))
    assert f"Referral voucher <code>{voucher}</code>: 20% off" in first
    assert f'id="voucher_code" name="voucher_code" value="{voucher}"' in first
    paid = shop.pay(b, "100.00", email="bo@bolt.example", voucher=voucher)
    assert paid.status_code == 302
    shown = text(shop.client.get(paid.location))
    assert re.search(r'id="acquisition-method">REFERRAL_VOUCHER<', shown)
    assert re.search(r'id="payment-amount">80\.00 USD<', shown)

    second = text(shop.client.get(f"/checkout?project={b}"))
    assert 'id="referral-voucher"' not in second and 'name="voucher_code" value=""' in second
    paid = shop.pay(b, "100.00", email="bo@bolt.example")
    assert re.search(r'id="acquisition-method">REFERRAL<', text(shop.client.get(paid.location)))
    txns = dump(shop.sandbox())["transactions"]
    assert [(t["amount"], t["promo_code"], t["referral_code"]) for t in txns] == \
        [(8000, voucher, code_a), (10000, None, code_a)]


def test_an_unknown_code_in_the_link_is_a_404_and_a_forged_landing_attaches_nothing(shop: Shop) -> None:
    a = shop.create_project("Acme Analytics")
    shop.sync_owner(a, "ann@acme.example", "Ann Acme")
    assert shop.client.get("/havn-link/r/shopeasy?ref=HAVN-NO-404").status_code == 404
    assert shop.client.get("/havn-link/r/shopeasy").status_code == 400
    # Someone types the landing URL with a made-up code: the cookie is set, but HAVN does not know the code.
    shop.client.get("/signup?ref=HAVN-NO-404")
    signed_up = shop.post("/signup", {"project_name": "Dora", "email": "dora@example.com", "name": "Dora"})
    assert signed_up.status_code == 302
    [dora] = [p for p in shop.rows(shop.models.Project) if p.name == "Dora"]
    assert dora.upline_referral_code is None and dora.sync_state == "synced"
    assert shop.client.get_cookie("havn_referral") is None

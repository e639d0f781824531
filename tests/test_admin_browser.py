"""The operator console in a real browser: ShopEasy's operator signs in, finds a dead payment, requeues it.

Uses the Chromium fixtures of tests/test_example_browser.py (same requirements,
same skip advice). Screenshots go to ``test-artifacts/example-browser/``; the
dashboard's is the README's picture of the console.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import pytest

if sys.version_info < (3, 10):  # Flask-Admin 2 needs 3.10; ShopEasy then runs without its console
    pytest.skip("the operator console needs Flask-Admin 2, which needs Python 3.10+", allow_module_level=True)

from test_example_browser import Person, browser, serve_shopeasy  # noqa: E402,F401  (fixtures)

PASSWORD = "operators only"


def _dead_payment(app: Any) -> int:
    """A referred project and one completed payment HAVN refused until delivery gave up (one attempt allowed)."""
    havn = app.extensions["havn"]
    with app.app_context():
        referrer = havn.projects.sync_owner(havn.projects.create("Acme Analytics"), "ann@acme.example", "Ann Acme")
        project = havn.projects.create("Bolt Bikes", referrer.referral_code)
        havn.projects.sync_owner(project, "bo@bolt.example", "Bo Bolt")
        faults = havn.sandbox_app.extensions["havn_sandbox"].faults
        faults.configure({"seed": 1, "rates": {"500": 1.0}})
        try:
            payment = havn.payments.record(project, 4200, "USD", customer_email="buyer@example.com")
        finally:
            faults.clear()
        assert payment.delivery_state == "dead", payment.last_error
        return int(payment.id)


def test_an_operator_requeues_a_dead_payment_from_the_console(serve_shopeasy: Callable[..., str],  # noqa: F811
                                                               browser: Any) -> None:  # noqa: F811
    url = serve_shopeasy(SHOPEASY_OPERATOR_PASSWORD=PASSWORD, HAVN_DELIVERY_MAX_ATTEMPTS=1)
    payment_id = _dead_payment(serve_shopeasy.apps[-1])
    me = Person(browser, url)

    me.open("/admin/havn/dashboard/")
    assert "Forbidden" in me.text()  # 403 before signing in
    me.open("/")
    me.follow("#nav-operator", to="operator.sign_in_form")
    me.fill("#operator-password", PASSWORD)
    me.follow("#operator-sign-in", to="havn_dashboard.index")
    assert me.find("#havn-dead-letters").get_attribute("data-count") == "1"
    assert me.find("#havn-commission-chart").tag_name == "svg"
    me.screenshot("admin-01-dashboard")

    me.follow("#havn-dead-letters", to="havn_payments.index_view")
    row = me.find(f"input.action-checkbox[value='{payment_id}']")
    assert "42.00 USD" in me.text("table.model-list")
    me.screenshot("admin-02-dead-payments")
    row.click()
    browser.find_element(me.By.LINK_TEXT, "With selected").click()
    browser.execute_script("window.confirm = function () { return true; };")  # the person clicks OK
    me.follow(link_text="Requeue dead", to="havn_payments.index_view")
    assert f"Payment {payment_id}: requeued and delivered" in me.text(".alert")
    me.screenshot("admin-03-requeued")

    me.open(f"/admin/havn/payments/details/?id={payment_id}")
    details = me.text("table")
    assert "sent" in details and "Commission by level" in details
    me.screenshot("admin-04-delivered-payment")

    me.open("/admin/havn/dashboard/")
    assert me.find("#havn-by-state tr[data-state='sent'] .count").text == "1"
    assert me.find("#havn-dead-letters").get_attribute("data-count") == "0"
    paid = [bar for bar in browser.find_elements(me.By.CSS_SELECTOR, "#havn-commission-chart rect.bar")
            if bar.get_attribute("data-cents") != "0"]
    assert len(paid) == 1  # today's commission, now that HAVN has the payment
    me.screenshot("admin-05-dashboard-after")

"""ShopEasy (example_app) under hostile input, on SQLite and PostgreSQL: events whose values do not fit
its own columns, a checkout e-mail longer than any column, test-mode events on a live shop."""
from __future__ import annotations

from typing import Any, Dict, Iterator, Optional

import pytest

from example_app import create_app, db
from example_app.models import ActivityItem
from flask_havn.models import column_length

from _hostile_helpers import count_requests, email_of_length
from conftest import fresh_tables
from test_example_app import Shop, build_network, text


@pytest.fixture
def shop(tmp_path: Any, database: Optional[str]) -> Iterator[Shop]:
    """ShopEasy on the database under test; its sandbox keeps its events to itself."""
    config: Dict[str, Any] = {"TESTING": True, "HAVN_MAX_RETRIES": 0, "HAVN_SANDBOX_WEBHOOK_URL": None}
    if database is not None:
        config["SQLALCHEMY_DATABASE_URI"] = database
    app = create_app(config, instance_path=str(tmp_path / "instance"))
    if database is not None:
        with app.app_context():
            fresh_tables(db)
    yield Shop(app)
    app.extensions["havn"].close()
    with app.app_context():
        db.session.remove()
        if database is not None:
            db.drop_all()
        db.engine.dispose()


def _commission_event(event_id: str, commission: Dict[str, Any], *, test_mode: bool = False) -> Dict[str, Any]:
    return {"id": event_id, "type": "commission.distributed", "test_mode": test_mode, "data": {
        "transaction": {"transaction_id": "txn_x", "payment_gateway_transaction_id": "unknown-to-shopeasy"},
        "commissions": [{"commission_id": "com_1", "amount": 500, "percentage": 5.0, **commission}],
        "total_commission": 500}}


def test_a_referral_code_and_level_beyond_shopeasy_columns_stay_in_the_message(shop: Shop) -> None:
    code = "HAVN-" + "L" * column_length(ActivityItem, "referral_code")  # one column's width and then some
    response = shop.send_event(_commission_event("evt_shopeasy_wide_values_01", {"referral_code": code,
                                                                               "level": 2 ** 40}))
    assert response.status_code == 200, response.get_json()
    (item,) = shop.rows(ActivityItem)
    assert (item.referral_code, item.level, item.amount) == (None, None, 500)
    assert code in item.message
    (event,) = shop.rows(shop.models.WebhookEvent)
    assert event.status == "processed"


def test_a_nul_in_a_referral_code_stays_out_of_shopeasy_columns(shop: Shop) -> None:
    response = shop.send_event(_commission_event("evt_shopeasy_nul_code_0001", {"referral_code": "HAVN\x00X"}))
    assert response.status_code == 200, response.get_json()
    (item,) = shop.rows(ActivityItem)
    assert item.referral_code is None and item.message.startswith("HAVN\ufffdX earned 5.00 USD")
    assert "HAVN\ufffdX earned" in text(shop.client.get("/activity"))


def test_values_that_fit_shopeasy_columns_are_kept(shop: Shop) -> None:
    code = "C" * column_length(ActivityItem, "referral_code")
    response = shop.send_event(_commission_event("evt_shopeasy_wide_values_02", {"referral_code": code,
                                                                               "level": 2 ** 31 - 1}))
    assert response.status_code == 200
    (item,) = shop.rows(ActivityItem)
    assert (item.referral_code, item.level) == (code, 2 ** 31 - 1)


@pytest.mark.parametrize("voucher", ["", "HAVN-VOUCHER-1"])
def test_a_checkout_email_longer_than_its_column_is_a_form_error_and_nothing_is_sent(shop: Shop,
                                                                                     voucher: str) -> None:
    b = build_network(shop).b
    requests = count_requests(shop)
    response = shop.pay(b, "100.00", email=email_of_length(300), voucher=voucher)
    assert response.status_code == 400
    assert 'id="error-customer_email"' in text(response) and "at most 254 characters" in text(response)
    assert shop.rows(shop.models.Payment) == []
    assert sum(requests.values()) == 0, dict(requests)  # not even the voucher check reached HAVN


def test_a_checkout_email_as_long_as_its_column_is_paid(shop: Shop) -> None:
    b = build_network(shop).b
    email = email_of_length(column_length(shop.models.Payment, "customer_email"))
    assert shop.pay(b, "100.00", email=email).status_code == 302
    (payment,) = shop.rows(shop.models.Payment)
    assert (payment.customer_email, payment.delivery_state) == (email, "sent")


def test_a_test_mode_event_stays_out_of_a_live_shop_feed(shop: Shop) -> None:
    response = shop.send_event(_commission_event("evt_shopeasy_test_mode_001", {"referral_code": "HAVN-T-1"},
                                                 test_mode=True))
    assert response.status_code == 200
    assert shop.rows(ActivityItem) == []
    (event,) = shop.rows(shop.models.WebhookEvent)
    assert (event.status, event.test_mode) == ("processed", True)
    assert "evt_shopeasy_test_mode_001" in text(shop.client.get("/activity"))  # the webhook log shows it

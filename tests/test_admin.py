"""The operator console (Flask-Admin): access, every view and filter, every action through the services."""
from __future__ import annotations

import re
import subprocess
import sys
from typing import Any, Dict, List

import pytest

if sys.version_info < (3, 10):  # Flask-Admin 2 needs 3.10; elsewhere the test extra installs it (no skip then)
    pytest.skip("the operator console needs Flask-Admin 2, which needs Python 3.10+", allow_module_level=True)

from flask_admin import Admin  # noqa: E402

from _projects_helpers import quiet, sandbox_of, synced_chain  # noqa: E402
from flask_havn.errors import HAVNConfigError  # noqa: E402

CONFIG = {"SECRET_KEY": "console-tests", "HAVN_MAX_RETRIES": 0, "HAVN_DELIVERY_MAX_ATTEMPTS": 1,
          "HAVN_DELIVERY_BACKOFF": 0, "HAVN_DELIVERY_MAX_BACKOFF": 0}
URL = "/havn-admin"


@pytest.fixture
def console(make_host: Any) -> Any:
    """A host whose operators are allowed (``@havn.authorize`` says yes) with the console mounted at /havn-admin."""
    host = quiet(make_host)(CONFIG)
    host.havn.authorize(lambda: True)
    host.havn.init_admin(app=host.app)
    return host


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, "the action form carries no CSRF token"
    return match.group(1)


def _act(client: Any, view: str, action: str, ids: List[Any]) -> str:
    """Post an action from the list page the way the browser does (with that page's CSRF token)."""
    page = client.get(f"{URL}/havn/{view}/").get_data(as_text=True)
    response = client.post(f"{URL}/havn/{view}/action/", data={
        "csrf_token": _token(page), "action": action, "rowid": [str(i) for i in ids], "url": f"{URL}/havn/{view}/"},
        follow_redirects=True)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _payments(host: Any, b_id: int) -> Dict[str, int]:
    """One payment per interesting state: sent, dead (HAVN answered 500 and one attempt is allowed), pending."""
    with host.app.app_context():
        sent = host.havn.record_payment(b_id, 1000, customer_email="a@example.com", payment_gateway_transaction_id="pi_sent")
        faults = sandbox_of(host).faults
        faults.configure({"seed": 1, "rates": {"500": 1.0}})
        dead = host.havn.record_payment(b_id, 2500, "EUR", customer_email="b@example.com",
                                        payment_gateway_transaction_id="pi_dead")
        faults.clear()
        pending = host.havn.record_payment(b_id, 700, customer_email="c@example.com", status="pending",
                                           payment_gateway_transaction_id="pi_pending")
        assert (sent.delivery_state, dead.delivery_state, pending.delivery_state) == ("sent", "dead", "pending")
        return {"sent": sent.id, "dead": dead.id, "pending": pending.id}


def test_every_page_and_action_is_denied_without_an_authorize_callback(make_host: Any) -> None:
    host = quiet(make_host)(CONFIG)
    host.havn.init_admin(app=host.app)
    client = host.app.test_client()
    for path in ("/", "/havn/dashboard/", "/havn/projects/", "/havn/payments/", "/havn/events/",
                 "/havn/payments/details/?id=1"):
        assert client.get(URL + path).status_code == 403, path
    assert client.post(f"{URL}/havn/payments/action/", data={"action": "deliver", "rowid": "1"}).status_code == 403


def test_a_denied_user_gets_403_and_the_action_never_runs(console: Any) -> None:
    _, _, b_id, _ = synced_chain(console)
    ids = _payments(console, b_id)
    allowed = {"yes": True}
    console.havn.authorize(lambda: allowed["yes"])
    client = console.app.test_client()
    page = client.get(f"{URL}/havn/payments/").get_data(as_text=True)
    allowed["yes"] = False
    assert client.get(f"{URL}/havn/dashboard/").status_code == 403
    response = client.post(f"{URL}/havn/payments/action/", data={
        "csrf_token": _token(page), "action": "requeue_dead", "rowid": str(ids["dead"])})
    assert response.status_code == 403
    with console.app.app_context():
        assert console.havn.payments.get(ids["dead"]).delivery_state == "dead"


def test_a_dedicated_admin_callback_replaces_havn_authorize_for_the_console(make_host: Any) -> None:
    host = quiet(make_host)(CONFIG)
    host.havn.authorize(lambda: True)  # the JSON routes are open…
    admin = Admin(host.app, name="Host admin", url="/ops")
    assert host.havn.init_admin(admin, authorize=lambda: False) is admin  # …the console is not
    client = host.app.test_client()
    assert client.get("/ops/havn/dashboard/").status_code == 403
    assert client.get("/havn/projects").status_code == 200


def test_an_action_without_its_csrf_token_is_refused(console: Any) -> None:
    _, _, b_id, _ = synced_chain(console)
    ids = _payments(console, b_id)
    client = console.app.test_client()
    response = client.post(f"{URL}/havn/payments/action/", data={"action": "requeue_dead", "rowid": str(ids["dead"])},
                           follow_redirects=True)
    assert "Failed to perform action" in response.get_data(as_text=True)
    with console.app.app_context():
        assert console.havn.payments.get(ids["dead"]).delivery_state == "dead"


def test_views_join_the_hosts_admin_under_the_havn_category(make_host: Any) -> None:
    host = quiet(make_host)(CONFIG)
    host.havn.authorize(lambda: True)
    admin = Admin(host.app, name="Host admin", url="/ops")
    host.havn.init_admin(admin)
    assert {(v.category, v.endpoint) for v in admin._views if v.category} == {
        ("HAVN", "havn_dashboard"), ("HAVN", "havn_projects"), ("HAVN", "havn_payments"), ("HAVN", "havn_events")}
    page = host.app.test_client().get("/ops/havn/payments/").get_data(as_text=True)
    assert "Host admin" in page and "HAVN" in page


def test_projects_list_detail_downline_and_sync_owner_again(console: Any) -> None:
    a_id, a_code, b_id, b_code = synced_chain(console)
    with console.app.app_context():
        lonely = console.havn.create_project("No Owner Yet")
        lonely_id = lonely.id
    client = console.app.test_client()
    page = client.get(f"{URL}/havn/projects/").get_data(as_text=True)
    for text in ("Alpha Agency", a_code, b_code, "Alice Alpha &lt;alice@alpha.example&gt;", "Last sync"):
        assert text in page
    assert client.get(f"{URL}/havn/projects/new/").status_code in (302, 403, 404)
    assert client.get(f"{URL}/havn/projects/edit/?id={a_id}").status_code in (302, 403, 404)
    details = client.get(f"{URL}/havn/projects/details/?id={a_id}").get_data(as_text=True)
    assert 'id="havn-downline"' in details and f'id="havn-node-{b_id}"' in details
    assert f'data-parent="{a_id}" data-child="{b_id}"' in details
    page = _act(client, "projects", "sync_owner", [a_id, lonely_id])
    assert f"Project {a_id}: synced — referral code {a_code}" in page
    assert f"Project {lonely_id}: skipped — it has no owner to sync yet" in page
    filtered = client.get(f"{URL}/havn/projects/?flt0_sync_state_equals=pending").get_data(as_text=True)
    assert "No Owner Yet" in filtered and "Alpha Agency" not in filtered


def test_payments_list_formats_money_and_filters_by_state_currency_project_date(console: Any) -> None:
    a_id, _, b_id, _ = synced_chain(console)
    ids = _payments(console, b_id)
    client = console.app.test_client()
    page = client.get(f"{URL}/havn/payments/").get_data(as_text=True)
    assert "10.00 USD" in page and "25.00 EUR" in page and "7.00 USD" in page
    dead = client.get(f"{URL}/havn/payments/?flt0_delivery_state_equals=dead").get_data(as_text=True)
    assert "25.00 EUR" in dead and "10.00 USD" not in dead
    eur = client.get(f"{URL}/havn/payments/?flt0_currency_equals=EUR").get_data(as_text=True)
    assert "25.00 EUR" in eur and "7.00 USD" not in eur
    assert "Beta Shop (#" in page  # the project filter's choices
    by_project = client.get(f"{URL}/havn/payments/?flt0_project_equals={a_id}").get_data(as_text=True)
    assert "25.00 EUR" not in by_project and "10.00 USD" not in by_project
    assert "10.00 USD" in client.get(f"{URL}/havn/payments/?flt0_project_equals={b_id}").get_data(as_text=True)
    with console.app.app_context():
        created = console.havn.payments.get(ids["sent"]).created_at
    since = client.get(f"{URL}/havn/payments/?flt0_created_at_greater_than="
                       f"{created.replace(year=created.year + 1):%Y-%m-%d %H:%M:%S}").get_data(as_text=True)
    assert "10.00 USD" not in since and "25.00 EUR" not in since
    for path in ("new/", f"edit/?id={ids['sent']}", "delete/"):
        assert client.get(f"{URL}/havn/payments/{path}").status_code in (302, 403, 404, 405), path


def test_payment_detail_shows_commission_by_level_and_currency_audit(console: Any) -> None:
    _, a_code, b_id, _ = synced_chain(console)
    ids = _payments(console, b_id)
    with console.app.app_context():
        sent = console.havn.payments.get(ids["sent"])
        levels = {item["level"] for item in sent.commissions}
        assert sent.commissions and sent.total_commission
    client = console.app.test_client()
    details = client.get(f"{URL}/havn/payments/details/?id={ids['sent']}").get_data(as_text=True)
    assert "havn-commissions" in details and a_code in details
    assert all(f"<td>{level}</td>" in details for level in levels)
    assert "Amount (USD, audit)" in details and "Conversion Verdict" in details


def test_bulk_actions_over_mixed_states_report_each_row(console: Any) -> None:
    _, _, b_id, _ = synced_chain(console)
    ids = _payments(console, b_id)
    client = console.app.test_client()
    page = _act(client, "payments", "requeue_dead", [ids["sent"], ids["dead"], ids["pending"]])
    assert f"Payment {ids['sent']}: skipped — it is sent, not dead" in page
    assert f"Payment {ids['pending']}: skipped — it is pending, not dead" in page
    assert f"Payment {ids['dead']}: requeued and delivered — HAVN transaction" in page  # inline delivery
    with console.app.app_context():
        assert console.havn.payments.get(ids["dead"]).delivery_state == "sent"
    page = _act(client, "payments", "retry", [ids["sent"], ids["pending"]])
    assert f"Payment {ids['sent']}: refused — " in page and "already delivered" in page
    assert f"Payment {ids['pending']}: refused — " in page and "complete it first" in page
    page = _act(client, "payments", "deliver", [ids["sent"], ids["pending"], 999999, "abc"])
    assert f"Payment {ids['sent']}: nothing to do — it is sent (not due now)" in page
    assert f"Payment {ids['pending']}: nothing to do — it is pending (not due now)" in page
    assert "Payment 999999: refused — " in page
    assert "Payment abc: refused — not a row id" in page


def test_deliver_now_reports_a_failure_and_then_a_delivery(make_host: Any) -> None:
    host = quiet(make_host)({**CONFIG, "HAVN_DELIVERY_MAX_ATTEMPTS": 5, "HAVN_DELIVERY": "worker"})
    host.havn.authorize(lambda: True)
    host.havn.init_admin(app=host.app)
    _, _, b_id, _ = synced_chain(host)
    with host.app.app_context():
        payment_id = host.havn.record_payment(b_id, 1000, customer_email="a@example.com").id
    client = host.app.test_client()
    sandbox_of(host).faults.configure({"seed": 1, "rates": {"503": 1.0}})
    page = _act(client, "payments", "deliver", [payment_id])
    assert f"Payment {payment_id}: failed — " in page and "503" in page
    sandbox_of(host).faults.clear()
    page = _act(client, "payments", "deliver", [payment_id])
    assert f"Payment {payment_id}: delivered — HAVN transaction" in page


def _failed_event(host: Any, calls: List[str]) -> None:
    """Store event ``evt_admin_1`` as failed: a ``webhook_received`` receiver raises on its first delivery only."""
    from flask_havn import signals
    from flask_havn.events import Event
    from flask_havn.webhooks import get_receiver

    def flaky(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs["event"].id)
        if len(calls) == 1:
            raise RuntimeError("receiver broke")

    signals.webhook_received.connect(flaky, weak=False)
    event = Event.from_envelope({"id": "evt_admin_1", "type": "transaction.created", "created_at": "2026-01-01T00:00:00Z",
                                 "test_mode": True, "data": {"transaction_id": "tx_1", "amount": 1000}})
    with host.app.test_request_context():
        assert get_receiver(host.app).receive(event).event_status == "failed"


@pytest.fixture
def calls() -> Any:
    """What the flaky receiver saw; it is disconnected after the test."""
    from flask_havn import signals

    seen: List[str] = []
    yield seen
    for receiver in list(signals.webhook_received.receivers.values()):
        if getattr(receiver, "__name__", "") == "flaky":
            signals.webhook_received.disconnect(receiver)


def test_webhook_events_filter_pretty_payload_and_replay_a_failed_event(console: Any, calls: List[str]) -> None:
    _failed_event(console, calls)
    client = console.app.test_client()
    listed = client.get(f"{URL}/havn/events/?flt0_status_equals=failed").get_data(as_text=True)
    assert "evt_admin_1" in listed and "RuntimeError: receiver broke" in listed
    assert "evt_admin_1" not in client.get(f"{URL}/havn/events/?flt0_status_equals=processed").get_data(as_text=True)
    assert "evt_admin_1" in client.get(f"{URL}/havn/events/?flt0_type_equals=transaction.created").get_data(as_text=True)
    assert "evt_admin_1" not in client.get(f"{URL}/havn/events/?flt0_type_equals=voucher.used").get_data(as_text=True)
    details = client.get(f"{URL}/havn/events/details/?id=evt_admin_1").get_data(as_text=True)
    assert '<pre class="havn-json">' in details and "&#34;transaction_id&#34;: &#34;tx_1&#34;" in details
    page = _act(client, "events", "replay", ["evt_admin_1", "evt_missing"])
    with console.app.app_context():
        status = console.db.session.get(console.havn.models.WebhookEvent, "evt_admin_1").status
    assert status in ("processed", "ignored")  # no longer failed: the receiver ran cleanly this time
    assert f"Event evt_admin_1: replayed — now {status}" in page
    assert "Event evt_missing: not found" in page
    assert calls == ["evt_admin_1", "evt_admin_1"]


def test_dashboard_counts_states_dead_letters_failed_events_and_charts_commission(console: Any,
                                                                                 calls: List[str]) -> None:
    _, _, b_id, _ = synced_chain(console)
    ids = _payments(console, b_id)
    _failed_event(console, calls)
    with console.app.app_context():
        sent = console.havn.payments.get(ids["sent"])
        paid, day = sent.total_commission, sent.sent_at.date().isoformat()
    page = console.app.test_client().get(f"{URL}/havn/dashboard/").get_data(as_text=True)
    assert 'id="havn-dead-letters" data-count="1"' in page
    assert 'id="havn-failed-events" data-count="1"' in page
    assert re.search(r'<tr data-state="sent"><th>sent</th>\s*<td class="count"><a [^>]*>1</a>', page)
    assert f'data-day="{day}" data-cents="{paid}"' in page
    assert page.count('class="bar"') == 30
    assert "http://" not in page.split('id="havn-commission-chart"')[1].split("</svg>")[0].replace(
        "http://www.w3.org/2000/svg", "")
    assert "flt0_delivery_state_equals=dead" in page


def test_the_console_home_goes_to_the_dashboard(console: Any) -> None:
    response = console.app.test_client().get(URL + "/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/havn/dashboard/")


def test_init_admin_needs_the_database_and_an_app(make_host: Any) -> None:
    host = make_host(CONFIG, with_db=False)
    with pytest.raises(HAVNConfigError):
        host.havn.init_admin(app=host.app)
    with pytest.raises(HAVNConfigError, match="needs the Flask app"):
        host.havn.init_admin(Admin())


def test_init_admin_once_per_app(console: Any) -> None:
    with pytest.raises(HAVNConfigError, match="already on this app"):
        console.havn.init_admin(app=console.app, url="/second")


def test_without_flask_admin_the_package_imports_and_init_admin_names_the_extra() -> None:
    """A Python where ``import flask_admin`` fails (``sys.modules`` entry ``None``): the rest works."""
    script = """
import sys
sys.modules["flask_admin"] = None
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
import flask_havn
from flask_havn.errors import HAVNConfigError
app = Flask("no_admin")
app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", HAVN_SANDBOX=True, HAVN_SANDBOX_DATABASE_URI="sqlite://")
havn = flask_havn.HAVN(app, db=SQLAlchemy(app))
try:
    havn.init_admin(app=app)
except HAVNConfigError as exc:
    print("refused:", exc)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "error"})
    assert result.returncode == 0, result.stderr
    assert 'refused: The HAVN operator console needs Flask-Admin: pip install "flask-havn[admin]"' in result.stdout


def test_without_flask_wtf_the_action_forms_use_flask_admins_secure_form(make_host: Any) -> None:
    """The fallback base (``SecureForm``) also refuses an action without its token and accepts the page's."""
    from flask_admin.form import SecureForm

    from flask_havn.admin.views import PaymentView, templates_registered

    host = quiet(make_host)(CONFIG)
    host.havn.authorize(lambda: True)
    _, _, b_id, _ = synced_chain(host)
    ids = _payments(host, b_id)
    templates_registered(host.app)
    admin = Admin(host.app, url="/plain")
    admin.add_view(PaymentView(host.models.Payment, host.db, form_base=SecureForm, name="Payments",
                               endpoint="havn_payments", url="payments"))
    client = host.app.test_client()
    action = {"action": "requeue_dead", "rowid": str(ids["dead"]), "url": "/plain/payments/"}
    refused = client.post("/plain/payments/action/", data=action, follow_redirects=True).get_data(as_text=True)
    assert "Failed to perform action" in refused
    page = client.get("/plain/payments/").get_data(as_text=True)
    done = client.post("/plain/payments/action/", data={"csrf_token": _token(page), **action},
                       follow_redirects=True).get_data(as_text=True)
    assert f"Payment {ids['dead']}: requeued and delivered" in done

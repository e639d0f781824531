"""ShopEasy (example_app), server side: every page renders, forms validate, receivers fill the activity table.

The app runs as a developer gets it: its own factory, SQLite in an instance
folder (here tmp_path), the embedded HAVN sandbox. Webhook events are posted
signed to the app's real endpoint, so the receivers run inside flask_havn's
webhook transaction exactly as in production.
"""
from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf.csrf import CSRFProtect

from example_app import create_app, db, havn
from example_app.models import ActivityItem
from example_app.money import CURRENCIES, format_money, parse_amount
from example_app.network import earnings_by_code, layout_network
from flask_havn.config import SANDBOX_WEBHOOK_SECRET
from flask_havn.testing import sign_webhook, wait_for_events

PAGES = ["/projects", "/checkout", "/payments", "/network", "/activity", "/sandbox"]


class Shop:
    """The running app, its test client and the steps a person takes, as helpers."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self._token: Optional[str] = None

    @property
    def token(self) -> str:
        if self._token is None:
            html = self.client.get("/projects").get_data(as_text=True)
            self._token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        return self._token

    def post(self, url: str, data: Dict[str, Any], **kwargs: Any) -> Any:
        return self.client.post(url, data={"csrf_token": self.token, **data}, **kwargs)

    def rows(self, model: Any) -> List[Any]:
        with self.app.app_context():
            return db.session.execute(db.select(model).order_by(model.id)).scalars().all()

    @property
    def models(self) -> Any:
        with self.app.app_context():
            return havn.models

    def create_project(self, name: str, upline: str = "") -> int:
        response = self.post("/projects", {"project_name": name, "upline_referral_code": upline})
        assert response.status_code == 302, response.get_data(as_text=True)
        return int(response.location.rsplit("/", 1)[1])

    def sync_owner(self, project_id: int, email: str, name: str) -> str:
        response = self.post(f"/projects/{project_id}/owner", {"email": email, "name": name})
        assert response.status_code == 302, response.get_data(as_text=True)
        html = self.client.get(f"/projects/{project_id}").get_data(as_text=True)
        return re.search(r'id="referral-code" value="([^"]+)"', html).group(1)

    def pay(self, project_id: int, amount: str, currency: str = "USD", email: str = "buyer@example.com",
            voucher: str = "", **kwargs: Any) -> Any:
        return self.post("/checkout", {"project_id": str(project_id), "amount": amount, "currency": currency,
                                       "customer_email": email, "voucher_code": voucher}, **kwargs)

    def sandbox(self) -> Any:
        from flask_havn.sandbox.app import get_state as sandbox_state

        return sandbox_state(self.app.extensions["havn"].sandbox_app)

    def send_event(self, envelope: Dict[str, Any]) -> Any:
        body, headers = sign_webhook(envelope, SANDBOX_WEBHOOK_SECRET)
        return self.client.post("/havn/webhooks", data=body, headers={**headers, "Content-Type": "application/json"})


def _build(tmp_path: Any, **config: Any) -> Iterator[Shop]:
    app = create_app({"TESTING": True, "HAVN_MAX_RETRIES": 0, "SHOPEASY_TEAM_MAX_BYTES": 1024, **config},
                     instance_path=str(tmp_path / "instance"))
    yield Shop(app)
    app.extensions["havn"].close()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def shop(tmp_path: Any) -> Iterator[Shop]:
    """ShopEasy whose sandbox keeps its events to itself: the tests post the events they need, signed."""
    yield from _build(tmp_path, HAVN_SANDBOX_WEBHOOK_URL=None)


@pytest.fixture
def live_shop(tmp_path: Any) -> Iterator[Shop]:
    """ShopEasy as `make demo` runs it: the embedded sandbox delivers its events to the app in-process."""
    yield from _build(tmp_path)


def build_network(shop: Shop) -> SimpleNamespace:
    """A referred B: A synced, B created with A's code and synced (``.a``, ``.b``, ``.code_a``, ``.code_b``)."""
    a = shop.create_project("Acme Analytics")
    code_a = shop.sync_owner(a, "ann@acme.example", "Ann Acme")
    b = shop.create_project("Bolt Bikes", code_a)
    code_b = shop.sync_owner(b, "bo@bolt.example", "Bo Bolt")
    return SimpleNamespace(a=a, b=b, code_a=code_a, code_b=code_b)


@pytest.fixture
def network(shop: Shop) -> SimpleNamespace:
    """A referred B: A synced, B created with A's code and synced."""
    return build_network(shop)


def text(response: Any) -> str:
    return response.get_data(as_text=True)


# -- the app and its pages ---------------------------------------------------------------------


def test_sqlite_file_lives_in_the_instance_folder(tmp_path: Any, shop: Shop) -> None:
    assert shop.app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/instance/shopeasy.sqlite"
    assert (tmp_path / "instance" / "shopeasy.sqlite").exists()
    assert shop.app.config["HAVN_SANDBOX"] is True


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_the_sandbox_badge(shop: Shop, path: str) -> None:
    response = shop.client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert re.search(r'<span class="badge badge-sandbox" id="havn-mode"[^>]*>sandbox</span>', text(response))


def test_every_page_renders_with_data(shop: Shop, network: SimpleNamespace) -> None:
    shop.pay(network.b, "100.00")
    for path in PAGES + [f"/projects/{network.a}", f"/projects/{network.b}", "/payments/1", "/network.svg"]:
        assert shop.client.get(path).status_code == 200, path


def test_root_redirects_to_the_projects(shop: Shop) -> None:
    response = shop.client.get("/")
    assert response.status_code == 302 and response.location.endswith("/projects")


def test_with_real_keys_there_is_no_sandbox(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAVN_API_KEY", "live-key")
    monkeypatch.setenv("HAVN_WEBHOOK_SECRET", "live-secret")
    app = create_app({"TESTING": True, "HAVN_BASE_URL": "https://havn.invalid"}, instance_path=str(tmp_path))
    try:
        client = app.test_client()
        page = text(client.get("/projects"))
        assert "live HAVN" in page and "badge-sandbox" not in page
        assert ">Sandbox</a>" not in page
        assert client.get("/sandbox").status_code == 404
        assert app.extensions["havn"].config.base_url == "https://havn.invalid"
    finally:
        with app.app_context():
            db.engine.dispose()
        app.extensions["havn"].close()


def test_unknown_pages_are_html_but_havn_routes_stay_json(shop: Shop) -> None:
    missing = shop.client.get("/projects/999")
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert "There is no project #999" in text(missing)
    assert shop.client.get("/payments/999").status_code == 404
    # flask_havn's JSON routes are closed (no @havn.authorize in ShopEasy) and answer JSON, not our page.
    api = shop.client.get("/havn/projects")
    assert api.status_code == 403 and api.is_json


@pytest.mark.parametrize("path", ["/projects/99999999999999999999999", "/payments/9223372036854775808",
                                  "/projects/0"])
def test_ids_out_of_any_database_range_are_404(shop: Shop, path: str) -> None:
    assert shop.client.get(path).status_code == 404


@pytest.mark.parametrize("raw", ["99999999999999999999999", "\u0663", "1e3", "-1", " "])
def test_checkout_ignores_hostile_project_ids(shop: Shop, network: SimpleNamespace, raw: str) -> None:
    page = text(shop.client.get("/checkout", query_string={"project": raw}))
    assert " selected>" not in page.split('id="project_id"')[1].split("</select>")[0]
    response = shop.pay(network.b, "10")  # a real project still works after the hostile look-ups
    assert response.status_code == 302
    bad = shop.post("/checkout", {"project_id": raw, "amount": "10", "currency": "USD",
                                  "customer_email": "x@example.com"})
    assert bad.status_code == 400 and 'id="error-project_id"' in text(bad)
    assert len(shop.rows(shop.models.Payment)) == 1


def test_a_post_without_the_csrf_token_is_refused_and_writes_nothing(shop: Shop) -> None:
    response = shop.client.post("/projects", data={"project_name": "Sneaky"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "The CSRF token is missing. The form expired or did not come from ShopEasy; reload the page" \
        in text(response)
    assert shop.rows(shop.models.Project) == []
    assert shop.token  # the session now holds a real token; a forged one still fails
    forged = shop.client.post("/projects", data={"project_name": "Sneaky", "csrf_token": "forged"})
    assert forged.status_code == 400 and "The CSRF token is invalid." in text(forged)
    assert shop.rows(shop.models.Project) == []


def test_flask_wtf_guards_every_post_but_the_signed_webhook_endpoint(shop: Shop) -> None:
    assert isinstance(shop.app.extensions["csrf"], CSRFProtect)
    # flask_havn's JSON routes are guarded too, and still answer JSON.
    api = shop.client.post("/havn/projects", json={"project_name": "Sneaky"})
    assert api.status_code == 400 and api.is_json and api.get_json()["message"] == "The CSRF token is missing."
    # HAVN's signed events carry no CSRF token: flask_havn exempted its endpoint from CSRFProtect.
    event = shop.send_event({"id": "evt_csrf", "type": "havn.unknown", "data": {}})
    assert event.status_code == 200
    assert shop.rows(shop.models.WebhookEvent)[0].id == "evt_csrf"
    assert shop.rows(shop.models.Project) == []


# -- projects ----------------------------------------------------------------------------------


def test_create_project_validates_and_writes_nothing_on_error(shop: Shop) -> None:
    blank = shop.post("/projects", {"project_name": "   ", "upline_referral_code": ""})
    assert blank.status_code == 400
    assert re.search(r'id="error-project_name">must be a non-empty string', text(blank))
    short = shop.post("/projects", {"project_name": "Acme", "upline_referral_code": "AB"})
    assert short.status_code == 400
    assert 'id="error-upline_referral_code"' in text(short)
    assert 'value="Acme"' in text(short)  # the form keeps what was typed
    assert shop.rows(shop.models.Project) == []


def test_create_project_with_an_upline_code_stores_it_upper_cased(shop: Shop) -> None:
    project_id = shop.create_project("Acme", " havn-zz-001 ")
    (project,) = shop.rows(shop.models.Project)
    assert (project.id, project.name, project.upline_referral_code) == (project_id, "Acme", "HAVN-ZZ-001")


def test_hostile_names_are_escaped_everywhere(shop: Shop) -> None:
    project_id = shop.create_project('<script>alert("x")</script> & Co')
    for path in ("/projects", f"/projects/{project_id}", "/network", "/network.svg", "/checkout"):
        page = text(shop.client.get(path))
        assert "<script>alert" not in page, path
        assert "&lt;script&gt;" in page, path


def test_owner_sync_gives_a_copyable_code_and_a_refer_link(shop: Shop) -> None:
    project_id = shop.create_project("Acme")
    before = text(shop.client.get(f"/projects/{project_id}"))
    assert 'id="referral-code"' not in before and "sync the owner below" in before
    code = shop.sync_owner(project_id, "ann@acme.example", "Ann")
    page = text(shop.client.get(f"/projects/{project_id}"))
    assert re.fullmatch(r"HAVN-[A-Z0-9-]+", code)
    assert 'data-copy="#referral-code"' in page
    refer = re.search(r'id="refer-link" href="([^"]+)"', page).group(1)
    assert refer == f"/projects?upline={code}#new-project"
    prefilled = text(shop.client.get(refer.split("#")[0]))
    assert re.search(rf'id="upline_referral_code" name="upline_referral_code" value="{code}"', prefilled)
    (project,) = shop.rows(shop.models.Project)
    assert (project.referral_code, project.sync_state) == (code, "synced")


def test_owner_sync_form_errors(shop: Shop) -> None:
    project_id = shop.create_project("Acme")
    response = shop.post(f"/projects/{project_id}/owner", {"email": "not-an-email", "name": ""})
    assert response.status_code == 400
    page = text(response)
    assert 'id="error-email">must be a valid email address' in page
    assert 'id="error-name">' in page
    assert shop.rows(shop.models.ProjectMember) == []


def test_owner_sync_refused_by_havn_is_shown(shop: Shop) -> None:
    project_id = shop.create_project("Orphan", "HAVN-NO-SUCH")
    response = shop.post(f"/projects/{project_id}/owner", {"email": "o@orphan.example", "name": "O"},
                         follow_redirects=True)
    page = text(response)
    assert "HAVN did not sync the owner" in page
    assert "HAVN-NO-SUCH" in page
    (project,) = shop.rows(shop.models.Project)
    assert project.sync_state == "failed" and project.referral_code is None


def test_team_import_from_pasted_lines_gives_a_result_per_row(shop: Shop, network: SimpleNamespace) -> None:
    lines = "email,name\ncara@acme.example,Cara\nnot-an-email,Dan\n\ncara@acme.example,Cara Again\n" \
            "ann@acme.example,Ann\neve@acme.example,\"Eve, Jr.\"\n"
    response = shop.post(f"/projects/{network.a}/team", {"lines": lines})
    assert response.status_code == 200
    results = re.findall(r'<tr class="result-([a-z-]+)">\s*<td>(\d+)</td><td>([^<]*)</td>', text(response))
    assert results == [("synced", "2", "cara@acme.example"), ("not-sent", "3", "not-an-email"),
                       ("not-sent", "5", "cara@acme.example"), ("not-sent", "6", "ann@acme.example"),
                       ("synced", "7", "eve@acme.example")]
    page = text(response)
    assert "listed twice (also line 2)" in page and "is the project&#39;s owner" in page
    partners = [m for m in shop.rows(shop.models.ProjectMember) if m.role == "partner"]
    assert sorted((m.email, m.name, m.sync_state) for m in partners) == [
        ("cara@acme.example", "Cara", "synced"), ("eve@acme.example", "Eve, Jr.", "synced")]


def test_team_import_from_an_uploaded_file(shop: Shop, network: SimpleNamespace) -> None:
    data = {"lines": "", "file": (io.BytesIO("\ufeffemail,name\nzoe@acme.example,Zoë\n".encode("utf-8")), "team.csv")}
    response = shop.post(f"/projects/{network.a}/team", data, content_type="multipart/form-data")
    assert response.status_code == 200
    assert re.findall(r'<tr class="result-([a-z-]+)">', text(response)) == ["synced"]
    assert [m.name for m in shop.rows(shop.models.ProjectMember) if m.role == "partner"] == ["Zoë"]


@pytest.mark.parametrize("payload, message", [
    ({"lines": ""}, "The list has no members"),
    ({"lines": "email,name\n"}, "The list has no members"),
    ({"file": (io.BytesIO(b"mail,fullname\nx@y.example,X\n"), "team.csv")}, "The file has a header line without"),
    ({"file": (io.BytesIO(b"\xff\xfe\x00bad"), "team.csv")}, "not UTF-8"),
    ({"file": (io.BytesIO(b"a@b.example,A\n" * 80), "big.csv")}, "larger than 1,024 bytes"),
    ({"lines": "a@example.com,A,extra"}, "expected two columns"),
])
def test_team_import_refuses_bad_lists(shop: Shop, network: SimpleNamespace, payload: Dict[str, Any],
                                       message: str) -> None:
    response = shop.post(f"/projects/{network.a}/team", payload, content_type="multipart/form-data")
    assert response.status_code == 400
    assert message in text(response)
    assert [m for m in shop.rows(shop.models.ProjectMember) if m.role == "partner"] == []


def test_team_import_needs_a_synced_owner(shop: Shop) -> None:
    project_id = shop.create_project("Acme")
    response = shop.post(f"/projects/{project_id}/team", {"lines": "a@example.com,A"})
    assert response.status_code == 400 and "Sync the owner first" in text(response)
    assert shop.rows(shop.models.ProjectMember) == []


def test_project_page_lists_downline_projects(shop: Shop, network: SimpleNamespace) -> None:
    page = text(shop.client.get(f"/projects/{network.a}"))
    downline = re.search(r'<ul id="downline">(.*?)</ul>', page, re.S).group(1)
    assert "Bolt Bikes" in downline and network.code_b in downline
    page_b = text(shop.client.get(f"/projects/{network.b}"))
    assert "Acme Analytics" in page_b and network.code_a in page_b
    assert "has not referred any project yet" in page_b


# -- checkout and payments ----------------------------------------------------------------------


def test_checkout_prefills_the_owner_email_and_lists_havn_currencies(shop: Shop, network: SimpleNamespace) -> None:
    page = text(shop.client.get(f"/checkout?project={network.b}"))
    assert 'value="bo@bolt.example"' in page
    assert re.search(rf'<option value="{network.b}" selected>Bolt Bikes</option>', page)
    assert re.findall(r'<option value="([A-Z]{3})"', page) == list(CURRENCIES)
    assert CURRENCIES[0] == "USD" and {"IDR", "KWD"} <= set(CURRENCIES) and len(CURRENCIES) == 33


def test_paying_in_a_referred_project_earns_the_upline_commission(shop: Shop, network: SimpleNamespace) -> None:
    response = shop.pay(network.b, "100.00")
    assert response.status_code == 302
    (payment,) = shop.rows(shop.models.Payment)
    assert (payment.amount, payment.currency, payment.status, payment.delivery_state) == (10000, "USD", "completed",
                                                                                           "sent")
    assert payment.project_id == network.b and payment.invoice_id.startswith("SE-")
    # The upline's code, never B's own, and A's associate earns level 1: 5 % of 100.00.
    assert [(c["referral_code"], c["level"], c["amount"]) for c in payment.commissions][0] == (network.code_a, 1, 500)
    page = text(shop.client.get(response.location))
    assert payment.havn_transaction_id in page
    assert f"<code>{network.code_a}</code>" in page
    assert "HAVN recorded transaction" in page


def test_paying_in_a_project_nobody_referred_is_platform_revenue(shop: Shop, network: SimpleNamespace) -> None:
    shop.pay(network.a, "50")
    (payment,) = shop.rows(shop.models.Payment)
    assert payment.delivery_state == "sent" and payment.commissions == [] and payment.total_commission == 0
    assert "none (platform revenue)" in text(shop.client.get(f"/payments/{payment.id}"))


@pytest.mark.parametrize("fields, field, message", [
    ({"project_id": ""}, "project_id", "Choose the project that pays."),
    ({"project_id": "999"}, "project_id", "Choose the project that pays."),
    ({"amount": ""}, "amount", "Enter an amount"),
    ({"amount": "abc"}, "amount", "is not a number"),
    ({"amount": "-5"}, "amount", "greater than zero"),
    ({"amount": "0"}, "amount", "greater than zero"),
    ({"amount": "NaN"}, "amount", "greater than zero"),
    ({"amount": "1.005"}, "amount", "USD amounts take at most 2 decimals."),
    ({"amount": "1500.5", "currency": "IDR"}, "amount", "IDR amounts take whole units."),
    ({"amount": "20000000"}, "amount", "must be"),
    ({"amount": "1e999999999"}, "amount", "is far too large"),
    ({"amount": "1e-999999999"}, "amount", "USD amounts take at most 2 decimals."),
    ({"amount": "1e999999999", "currency": "IDR"}, "amount", "is far too large"),
    ({"currency": "XYZ"}, "currency", "Choose a currency from the list."),
    ({"customer_email": ""}, "customer_email", "Enter the billing email"),
    ({"customer_email": "nobody"}, "customer_email", "must be a valid email address"),
    ({"voucher_code": "HAVN-NOPE-1"}, "voucher_code", "HAVN-NOPE-1 not found"),
])
def test_checkout_validation_writes_nothing(shop: Shop, network: SimpleNamespace, fields: Dict[str, str],
                                            field: str, message: str) -> None:
    form = {"project_id": str(network.b), "amount": "100.00", "currency": "USD",
            "customer_email": "buyer@example.com", "voucher_code": "", **fields}
    response = shop.post("/checkout", form)
    assert response.status_code == 400
    error = re.search(rf'id="error-{field}">([^<]*)<', text(response))
    assert error is not None and message in error.group(1), text(response)
    assert shop.rows(shop.models.Payment) == []


def test_a_local_voucher_code_is_kept_but_not_checked_with_havn(shop: Shop, network: SimpleNamespace) -> None:
    assert shop.pay(network.b, "10", voucher="SPRING10").status_code == 302
    (payment,) = shop.rows(shop.models.Payment)
    assert payment.voucher_code == "SPRING10" and payment.delivery_state == "sent"


def test_a_havn_voucher_needs_a_referred_project(shop: Shop, network: SimpleNamespace) -> None:
    response = shop.pay(network.a, "10", voucher="HAVN-AB-XYZ")
    assert response.status_code == 400 and "only for projects referred by another project" in text(response)


def test_failed_delivery_shows_a_retry_button_that_works(shop: Shop, network: SimpleNamespace) -> None:
    shop.sandbox().faults.configure({"rates": {"503": 1.0}})
    response = shop.pay(network.b, "25.00", follow_redirects=True)
    assert response.status_code == 200
    (payment,) = shop.rows(shop.models.Payment)
    assert payment.delivery_state == "failed" and payment.status == "completed"
    assert "has not recorded it yet" in text(response)
    listing = text(shop.client.get("/payments"))
    assert f'action="/payments/{payment.id}/retry"' in listing
    shop.sandbox().faults.clear()
    retried = shop.post(f"/payments/{payment.id}/retry", {}, follow_redirects=True)
    assert "HAVN recorded transaction" in text(retried)
    (payment,) = shop.rows(shop.models.Payment)
    assert payment.delivery_state == "sent" and payment.total_commission == 125
    assert f'action="/payments/{payment.id}/retry"' not in text(shop.client.get("/payments"))


def test_retrying_a_sent_payment_is_refused_politely(shop: Shop, network: SimpleNamespace) -> None:
    shop.pay(network.b, "10")
    response = shop.post("/payments/1/retry", {}, follow_redirects=True)
    assert "Cannot retry payment #1" in text(response) and "nothing to retry" in text(response)


# -- the network picture -------------------------------------------------------------------------


def _svg_nodes(svg_text: str) -> Dict[str, Dict[str, Any]]:
    root = ET.fromstring(svg_text)
    ns = {"s": "http://www.w3.org/2000/svg"}
    nodes = {}
    for g in root.iterfind(".//s:g", ns):
        texts = {t.get("class"): t.text for t in g.iterfind("s:text", ns)}
        nodes[g.get("data-referral-code")] = {"cents": int(g.get("data-earned-cents")), **texts}
    return nodes


def test_network_picture_shows_the_tree_and_the_commission_earned(shop: Shop, network: SimpleNamespace) -> None:
    shop.pay(network.b, "100.00")
    shop.pay(network.b, "20.00")
    response = shop.client.get("/network.svg")
    assert response.mimetype == "image/svg+xml"
    nodes = _svg_nodes(text(response))
    assert nodes[network.code_a] == {"cents": 600, "name": "Acme Analytics", "code": network.code_a,
                                     "earned": "earned 6.00 USD"}
    assert nodes[network.code_b] == {"cents": 0, "name": "Bolt Bikes", "code": network.code_b,
                                     "earned": "earned 0.00 USD"}
    root = ET.fromstring(text(response))
    edges = [(p.get("data-parent"), p.get("data-child"))
             for p in root.iterfind(".//{http://www.w3.org/2000/svg}path")]
    assert edges == [(str(network.a), str(network.b))]
    page = text(shop.client.get("/network"))
    node_a = re.search(rf'<g class="node earning" id="node-{network.a}".*?</g>', page, re.S).group(0)
    assert "earned 6.00 USD" in node_a and network.code_a in node_a


def test_network_picture_stays_valid_xml_with_control_characters_in_names(shop: Shop) -> None:
    shop.create_project("Bell\x07 & <Whistle>\x1b")
    nodes = _svg_nodes(text(shop.client.get("/network.svg")))
    assert nodes[""]["name"] == "Bell & <Whistle>"


def test_network_page_without_projects(shop: Shop) -> None:
    assert "No project yet" in text(shop.client.get("/network"))


def test_layout_places_children_under_their_parent() -> None:
    def p(pid: int, code: Optional[str], upline: Optional[str] = None) -> SimpleNamespace:
        return SimpleNamespace(id=pid, name=f"P{pid}", referral_code=code, upline_referral_code=upline,
                               sync_state="synced" if code else "pending")

    projects = [p(1, "C1"), p(2, "C2", "C1"), p(3, "C3", "C1"), p(4, None, "C2"), p(5, "C5", "OUTSIDE"),
                p(6, "C6", "C7"), p(7, "C7", "C6"), p(8, "C8", "C8")]
    layout = layout_network(projects, {"C1": 700, "C2": 300})
    by_id = {n.project_id: n for n in layout.nodes}
    assert by_id[1].earned == 700 and by_id[2].earned == 300 and by_id[3].earned == 0
    assert [n.depth for n in layout.nodes[:4]] == [0, 1, 1, 2]
    assert by_id[1].x == (by_id[2].x + by_id[3].x) / 2  # the parent is centred over its children
    assert by_id[4].x == by_id[2].x and by_id[4].y > by_id[2].y
    assert by_id[5].depth == 0 and by_id[5].outside_upline == "OUTSIDE"
    assert by_id[8].depth == 0  # its own upline: a root, no endless loop
    assert by_id[6].depth == 0 and by_id[7].depth == 0  # a loop of uplines: both roots, no recursion
    assert sorted((e.parent_id, e.child_id) for e in layout.edges)[:3] == [(1, 2), (1, 3), (2, 4)]
    xs = sorted(n.x for n in layout.nodes if not n.children)
    assert len(set(xs)) == len(xs)  # leaves never overlap
    assert layout.width >= max(n.x for n in layout.nodes) and layout.height >= max(n.y for n in layout.nodes)


def test_earnings_ignore_malformed_commissions() -> None:
    lists = [[{"referral_code": "havn-a", "amount": 500}, {"referral_code": "HAVN-A", "amount": 100}],
             None, [{"referral_code": None, "amount": 5}, {"referral_code": "HAVN-B", "amount": "7"},
                    {"referral_code": "HAVN-B", "amount": True}, {"amount": 9}]]
    assert earnings_by_code(lists) == {"HAVN-A": 600}


# -- receivers and the activity page --------------------------------------------------------------


def _commission_event(payment: Any, code: str, amount: int = 500) -> Dict[str, Any]:
    return {"type": "commission.distributed", "data": {
        "transaction": {"transaction_id": payment.havn_transaction_id, "amount": payment.amount,
                        "currency": payment.currency, "status": "completed",
                        "payment_gateway_transaction_id": payment.payment_gateway_transaction_id},
        "commissions": [{"commission_id": "com_1", "referral_code": code, "level": 1, "amount": amount,
                         "percentage": 5.0, "type": "REFERRAL", "direction": "UP", "status": "PENDING"}],
        "total_commission": amount}}


def test_commission_event_fills_the_feed_once(shop: Shop, network: SimpleNamespace) -> None:
    shop.pay(network.b, "100.00")
    (payment,) = shop.rows(shop.models.Payment)
    envelope = {"id": "evt_shopeasy_commission_0001", **_commission_event(payment, network.code_a)}
    assert shop.send_event(envelope).status_code == 200
    assert shop.send_event(envelope).status_code == 200  # a redelivery: nothing new
    (item,) = shop.rows(ActivityItem)
    assert (item.kind, item.event_id, item.payment_id, item.referral_code, item.level, item.amount) == (
        "commission", "evt_shopeasy_commission_0001", payment.id, network.code_a, 1, 500)
    page = text(shop.client.get("/activity"))
    feed = re.search(r'<ul class="feed" id="commission-feed">(.*?)</ul>', page, re.S).group(1)
    assert f"{network.code_a} earned 5.00 USD (level 1) on payment #{payment.id} of Bolt Bikes" in feed
    log = re.search(r'<table id="webhook-log".*?</table>', page, re.S).group(0)
    assert "evt_shopeasy_commission_0001" in log and "commission.distributed" in log and "processed" in log


def test_the_sandbox_own_events_reach_the_receivers(live_shop: Shop) -> None:
    shop = live_shop
    a = shop.create_project("Acme")
    code_a = shop.sync_owner(a, "ann@acme.example", "Ann")
    b = shop.create_project("Bolt", code_a)
    shop.sync_owner(b, "bo@bolt.example", "Bo")
    assert shop.pay(b, "100.00").status_code == 302
    wait_for_events(shop.app, 10)  # raises if the sandbox did not finish delivering its events
    (item,) = shop.rows(ActivityItem)
    (payment,) = shop.rows(shop.models.Payment)
    assert (item.kind, item.referral_code, item.level, item.amount, item.payment_id) == (
        "commission", code_a, 1, 500, payment.id)
    (event,) = shop.rows(shop.models.WebhookEvent)
    assert (event.type, event.status, event.payment_id) == ("commission.distributed", "processed", payment.id)
    assert shop.sandbox().dispatcher.statuses() == {event.id: "delivered"}


def test_conversion_failure_event_fills_the_failures(shop: Shop, network: SimpleNamespace) -> None:
    envelope = {"id": "evt_shopeasy_conversion_01", "type": "transaction.conversion_failed", "data": {
        "transaction": {"transaction_id": "txn_x", "status": "FAILED", "amount": 1001, "currency": "USD",
                        "payment_gateway_transaction_id": "unknown-to-shopeasy"},
        "original_amount": 150000, "original_currency": "IDR", "submitted_amount": 1001,
        "expected_amount": 949, "submitted_exchange_rate": "0.0000667", "server_exchange_rate": "0.0000633",
        "reason": "converted amount does not match server conversion"}}
    assert shop.send_event(envelope).status_code == 200
    (item,) = shop.rows(ActivityItem)
    assert (item.kind, item.amount, item.currency, item.payment_id) == ("conversion_failed", 150000, "IDR", None)
    page = text(shop.client.get("/activity"))
    failures = re.search(r'<ul class="feed" id="failure-feed">(.*?)</ul>', page, re.S).group(1)
    assert ("Conversion failed on a payment ShopEasy does not know (150,000 IDR) — converted amount does not "
            "match server conversion: sent 10.01 USD, HAVN expected 9.49 USD") in failures


@pytest.mark.parametrize("code", ["XXX", "usd", ""])
@pytest.mark.parametrize("known", [True, False], ids=["known-payment", "unknown-payment"])
def test_a_conversion_failure_in_a_currency_shopeasy_cannot_format_is_one_line(
        shop: Shop, network: SimpleNamespace, code: str, known: bool) -> None:
    gateway_id = "unknown-to-shopeasy"
    if known:
        shop.pay(network.b, "100.00")
        (payment,) = shop.rows(shop.models.Payment)
        gateway_id = payment.payment_gateway_transaction_id
    envelope = {"id": "evt_shopeasy_conversion_odd", "type": "transaction.conversion_failed", "data": {
        "transaction": {"transaction_id": "txn_x", "status": "FAILED", "amount": 1001, "currency": "USD",
                        "payment_gateway_transaction_id": gateway_id},
        "original_amount": 150000, "original_currency": code, "submitted_amount": 1001, "expected_amount": 949,
        "reason": "converted amount does not match server conversion"}}
    assert shop.send_event(envelope).status_code == 200
    assert shop.send_event(envelope).status_code == 200  # a redelivery adds nothing
    (item,) = shop.rows(ActivityItem)
    (event,) = shop.rows(shop.models.WebhookEvent)
    assert event.status == "processed"
    if known:  # ShopEasy's own figures for its payment
        assert (item.amount, item.currency, item.payment_id) == (10000, "USD", payment.id)
        assert "(100.00 USD)" in item.message
    else:  # HAVN's raw figures, the code only in the text
        assert (item.amount, item.currency, item.payment_id) == (150000, None, None)
        raw = f"(150000 minor units of {code!r})" if code else "(150000 minor units)"
        assert raw in item.message
    assert item.message.endswith("sent 10.01 USD, HAVN expected 9.49 USD")


@pytest.fixture
def converting_shop(tmp_path: Any) -> Iterator[Shop]:
    """ShopEasy converting non-USD payments itself (client mode), events delivered in-process."""
    yield from _build(tmp_path, HAVN_CURRENCY_CONVERSION="client", HAVN_EXCHANGE_RATES="IDR=0.0000633,KWD=3.25")


def _converting_network(shop: Shop) -> int:
    return int(build_network(shop).b)


def test_shopeasy_converting_itself_pays_commission_at_the_same_rate(converting_shop: Shop) -> None:
    b = _converting_network(converting_shop)
    page = text(converting_shop.client.get("/checkout"))
    assert "converted to USD by ShopEasy" in page
    response = converting_shop.pay(b, "12.345", "KWD", follow_redirects=True)
    assert "HAVN recorded transaction" in text(response)
    (payment,) = converting_shop.rows(converting_shop.models.Payment)
    assert (payment.amount, payment.currency, payment.amount_usd, payment.conversion_verdict) == (
        12345, "KWD", 4012, "accepted")
    assert payment.total_commission == 200
    assert '<dd id="amount-usd">40.12 USD</dd>' in text(response)


def test_a_conversion_refused_by_havn_is_one_line_in_the_activity(converting_shop: Shop) -> None:
    b = _converting_network(converting_shop)
    converting_shop.post("/sandbox/rates", {"currency": "IDR", "rate": "0.00007"})
    response = converting_shop.pay(b, "1500000", "IDR", follow_redirects=True)
    assert "HAVN refused the currency conversion" in text(response)
    wait_for_events(converting_shop.app, timeout=30)
    (item,) = converting_shop.rows(ActivityItem)  # HAVN's answer and its event: announced once
    assert item.kind == "conversion_failed" and item.payment_id == 1
    assert item.message.startswith("Conversion failed on payment #1 of Bolt Bikes (1,500,000 IDR)")
    assert "sent 94.95 USD, HAVN expected 105.00 USD" in item.message
    events = converting_shop.rows(converting_shop.models.WebhookEvent)
    assert [(e.type, e.status) for e in events] == [("transaction.conversion_failed", "processed")]


def test_checkout_in_a_currency_shopeasy_has_no_rate_for_is_refused(converting_shop: Shop) -> None:
    b = _converting_network(converting_shop)
    response = converting_shop.pay(b, "10.00", "EUR")
    assert response.status_code == 400
    assert 'id="error-currency"' in text(response) and "no exchange rate for EUR" in text(response)
    assert converting_shop.rows(converting_shop.models.Payment) == []


def test_hostile_event_content_is_stored_safely_and_escaped(shop: Shop) -> None:
    envelope = {"id": "evt_shopeasy_hostile_000001", "type": "commission.distributed", "data": {
        "transaction": {}, "commissions": [
            {"referral_code": "<img src=x onerror=alert(1)>", "level": "one", "amount": 12},
            {"referral_code": 5, "amount": None}, "not-an-object"]}}
    assert shop.send_event(envelope).status_code == 200
    items = shop.rows(ActivityItem)
    assert [(i.referral_code, i.level, i.amount) for i in items] == [("<img src=x onerror=alert(1)>", None, 12),
                                                                     (None, None, None)]
    page = text(shop.client.get("/activity"))
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_unknown_event_types_reach_only_the_webhook_log(shop: Shop) -> None:
    envelope = {"id": "evt_shopeasy_unknown_00001", "type": "associate.created", "data": {}}
    assert shop.send_event(envelope).status_code == 200
    assert shop.rows(ActivityItem) == []
    assert "associate.created" in text(shop.client.get("/activity"))


def test_receivers_are_connected_to_this_app_only(tmp_path: Any, shop: Shop) -> None:
    other = create_app({"TESTING": True}, instance_path=str(tmp_path / "other"))
    try:
        envelope = {"id": "evt_shopeasy_other_app_001", "type": "commission.distributed",
                    "data": {"transaction": {}, "commissions": [{"referral_code": "HAVN-X", "amount": 1}]}}
        body, headers = sign_webhook(envelope, SANDBOX_WEBHOOK_SECRET)
        assert other.test_client().post("/havn/webhooks", data=body, headers=headers).status_code == 200
        with other.app_context():
            assert db.session.execute(db.select(ActivityItem)).scalars().all() != []
        assert shop.rows(ActivityItem) == []
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
        other.extensions["havn"].close()


# -- sandbox knobs -------------------------------------------------------------------------------


def test_sandbox_page_moves_the_sandbox_rate(shop: Shop) -> None:
    from decimal import Decimal

    response = shop.post("/sandbox/rates", {"currency": "IDR", "rate": "0.00007"}, follow_redirects=True)
    assert response.status_code == 200
    assert shop.sandbox().backend.rates["IDR"] == Decimal("0.00007")
    assert re.search(r'<tr data-currency="IDR"><td>IDR</td><td class="num"><code>0.00007</code>', text(response))


@pytest.mark.parametrize("currency, rate, field", [
    ("USD", "2", "currency"), ("XYZ", "1", "currency"), ("IDR", "abc", "rate"), ("IDR", "-1", "rate"),
    ("IDR", "", "rate"), ("IDR", "1e10", "rate"),
])
def test_sandbox_page_refuses_bad_rates(shop: Shop, currency: str, rate: str, field: str) -> None:
    before = dict(shop.sandbox().backend.rates)
    response = shop.post("/sandbox/rates", {"currency": currency, "rate": rate})
    assert response.status_code == 400 and f'id="error-{field}"' in text(response)
    assert shop.sandbox().backend.rates == before


# -- small pieces --------------------------------------------------------------------------------


@pytest.mark.parametrize("typed, currency, minor", [
    ("100.00", "USD", 10000), ("100", "USD", 10000), ("1,234.5", "EUR", 123450), ("150000", "IDR", 150000),
    ("0.01", "USD", 1), ("1.234", "USD", None), ("1e2", "USD", 10000), ("Infinity", "USD", None),
    ("1e999999999", "USD", None), ("1E+999999999", "JPY", None), ("1e16", "USD", None),
    ("9.99e15", "USD", 999000000000000000), ("1e-999999999", "USD", None), ("1e-999999999", "JPY", None),
    ("1.0000000000000000000000000001", "USD", None), ("100.000000000000000000000000000000000", "USD", 10000),
    ("1.2340", "KWD", 1234),
])
def test_parse_amount(typed: str, currency: str, minor: Optional[int]) -> None:
    if minor is None:
        with pytest.raises(ValueError):
            parse_amount(typed, currency)
    else:
        assert parse_amount(typed, currency) == minor


def test_format_money() -> None:
    assert format_money(10000, "USD") == "100.00 USD"
    assert format_money(150000, "IDR") == "150,000 IDR"
    assert format_money(None) == "—"
    assert format_money(5, None) == "0.05 USD"


def test_team_import_refuses_more_rows_than_shopeasy_takes(shop: Shop, network: SimpleNamespace) -> None:
    response = shop.post(f"/projects/{network.a}/team", {"lines": "a@example.com,A\n" * 2001})
    assert response.status_code == 400 and "has more than 2000 members" in text(response)
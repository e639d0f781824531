"""Hostile input to the JSON routes: a 400 that names the field, and nothing written or sent — on SQLite
and on PostgreSQL (``database`` runs each test on both; PostgreSQL refuses what SQLite silently stores)."""
from __future__ import annotations

import json
from typing import Any, Dict, Tuple

import pytest

from flask_havn import rules

from _hostile_helpers import UNSTORABLE, count_requests, deep, email_of_length, largest_custom_fields, snapshot, \
    width
from _projects_helpers import allow, quiet, synced_chain

PAYMENT = {"project_id": None, "amount_cents": 1000, "customer_email": "c@example.com"}


@pytest.fixture
def host(make_host: Any, database: Any) -> Any:
    """A host on the database under test, its routes open, its sandbox sending no events back."""
    host = quiet(make_host)(database=database)
    allow(host)
    return host


@pytest.fixture
def chain(host: Any) -> Tuple[int, int]:
    """Project A (synced, with an owner) and project B referred by A: ``(a_id, b_id)``."""
    a_id, _, b_id, _ = synced_chain(host)
    return a_id, b_id


def _post_raw(host: Any, path: str, text: str) -> Any:
    return host.app.test_client().post(path, data=text.encode("utf-8"), content_type="application/json")


def _assert_refused(host: Any, response: Any, before: Dict[str, Any], requests: Any, field: str) -> str:
    """400 naming ``field``, no row changed, nothing sent to the sandbox; the field's message."""
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == "validation_error" and field in body["errors"], body
    assert snapshot(host) == before
    assert sum(requests.values()) == 0, dict(requests)
    return body["errors"][field]


ROUTES = ["/havn/projects", "/havn/projects/{a}/sync", "/havn/projects/{a}/members", "/havn/payments"]


@pytest.mark.parametrize("depth", [rules.MAX_JSON_DEPTH, 975, 100_000])
@pytest.mark.parametrize("route", ROUTES)
def test_a_body_nested_too_deep_is_400_on_every_json_route(host: Any, chain: Tuple[int, int], route: str,
                                                           depth: int) -> None:
    before, requests = snapshot(host), count_requests(host)
    body = '{"users": ' + deep(depth) + "}"  # depth + 1 levels in all
    response = _post_raw(host, route.format(a=chain[0]), body)
    message = _assert_refused(host, response, before, requests, "body")
    assert f"at most {rules.MAX_JSON_DEPTH} are accepted" in message


def test_a_body_exactly_as_deep_as_allowed_reaches_the_checks(host: Any, chain: Tuple[int, int]) -> None:
    before, requests = snapshot(host), count_requests(host)
    body = '{"project_name": ' + deep(rules.MAX_JSON_DEPTH - 1, '"x"') + "}"
    response = _post_raw(host, "/havn/projects", body)
    assert _assert_refused(host, response, before, requests, "project_name") == "must be a non-empty string"


def _new_project(host: Any) -> int:
    with host.app.app_context():
        return int(host.havn.create_project("Gamma").id)


def _json_for(route: str, chain: Tuple[int, int], email: str) -> Dict[str, Any]:
    if route.endswith("/sync"):
        return {"email": email, "name": "Owner"}
    if route.endswith("/members"):
        return {"users": [{"email": "ok@example.com", "name": "Ok"}, {"email": email, "name": "Long"}]}
    return {**PAYMENT, "project_id": chain[1], "customer_email": email}


EMAIL_ROUTES = {"/havn/projects/{b}/sync": "email", "/havn/projects/{a}/members": "users[1].email",
                "/havn/payments": "customer_email"}


@pytest.mark.parametrize("route", sorted(EMAIL_ROUTES))
def test_an_email_longer_than_its_column_is_400_and_never_reaches_havn(host: Any, chain: Tuple[int, int],
                                                                       route: str) -> None:
    gamma = _new_project(host)  # a project with no owner yet: the sync route takes any address for it
    path = route.format(a=chain[0], b=gamma)
    before, requests = snapshot(host), count_requests(host)
    response = host.app.test_client().post(path, json=_json_for(route, chain, email_of_length(300)))
    message = _assert_refused(host, response, before, requests, EMAIL_ROUTES[route])
    assert "at most 254 characters" in message


@pytest.mark.parametrize("route", sorted(EMAIL_ROUTES))
def test_an_email_as_long_as_its_column_is_stored(host: Any, chain: Tuple[int, int], route: str) -> None:
    path = route.format(a=chain[0], b=_new_project(host))
    email = email_of_length(width(host.models.ProjectMember, "email"))
    response = host.app.test_client().post(path, json=_json_for(route, chain, email))
    assert response.status_code in (200, 201), response.get_json()
    with host.app.app_context():
        models = host.havn.models
        stored = [m.email for m in models.ProjectMember.query.all()] + [
            p.customer_email for p in models.Payment.query.all()]
    assert email in stored


#: Each text field of POST /payments and the Payment column it goes to.
PAYMENT_TEXT = ["customer_email", "invoice_id", "customer_id", "voucher_code", "transaction_type",
                "payment_gateway", "payment_gateway_transaction_id"]


def _text_of(field: str, length: int) -> str:
    return email_of_length(length) if field == "customer_email" else "X" * length


@pytest.mark.parametrize("field", PAYMENT_TEXT)
def test_every_payment_text_is_checked_against_its_column(host: Any, chain: Tuple[int, int], field: str) -> None:
    limit = width(host.models.Payment, field)
    client = host.app.test_client()
    before, requests = snapshot(host), count_requests(host)
    too_long = client.post("/havn/payments", json={**PAYMENT, "project_id": chain[1],
                                                   field: _text_of(field, limit + 1)})
    assert f"at most {limit} characters" in _assert_refused(host, too_long, before, requests, field)
    fits = client.post("/havn/payments", json={**PAYMENT, "project_id": chain[1], field: _text_of(field, limit)})
    assert fits.status_code == 201, fits.get_json()
    assert fits.get_json()[field].upper() == _text_of(field, limit).upper()
    assert fits.get_json()["delivery_state"] == "sent"


@pytest.mark.parametrize("route,field", [("/havn/projects", "project_name"), ("/havn/projects/{b}/sync", "name"),
                                         ("/havn/projects/{a}/members", "users[0].name")])
def test_names_are_checked_against_their_column(host: Any, chain: Tuple[int, int], route: str,
                                                field: str) -> None:
    limit = width(host.models.Project, "name")
    assert limit == width(host.models.ProjectMember, "name")
    path = route.format(a=chain[0], b=_new_project(host))

    def body(name: str) -> Dict[str, Any]:
        if route == "/havn/projects":
            return {"project_name": name}
        if route.endswith("/sync"):
            return {"email": "gamma@example.com", "name": name}
        return {"users": [{"email": "team@example.com", "name": name}]}

    before, requests = snapshot(host), count_requests(host)
    response = host.app.test_client().post(path, json=body("N" * (limit + 1)))
    _assert_refused(host, response, before, requests, field)
    assert host.app.test_client().post(path, json=body("N" * limit)).status_code in (200, 201)


UNSTORABLE_BODIES = {
    "project_name": ("/havn/projects", lambda bad, chain: {"project_name": bad}),
    "upline_referral_code": ("/havn/projects", lambda bad, chain: {"project_name": "P", "upline_referral_code": bad}),
    "invoice_id": ("/havn/payments", lambda bad, chain: {**PAYMENT, "project_id": chain[1], "invoice_id": bad}),
    "payment_gateway_transaction_id": ("/havn/payments", lambda bad, chain: {
        **PAYMENT, "project_id": chain[1], "payment_gateway_transaction_id": bad}),
    "custom_fields.note": ("/havn/payments", lambda bad, chain: {
        **PAYMENT, "project_id": chain[1], "custom_fields": {"note": bad}}),
    "users[0].name": ("/havn/projects/{a}/members", lambda bad, chain: {
        "users": [{"email": "t@example.com", "name": bad}]}),
}


@pytest.mark.parametrize("kind", sorted(UNSTORABLE))
@pytest.mark.parametrize("field", sorted(UNSTORABLE_BODIES))
def test_text_no_database_stores_is_400(host: Any, chain: Tuple[int, int], field: str, kind: str) -> None:
    route, build = UNSTORABLE_BODIES[field]
    before, requests = snapshot(host), count_requests(host)
    response = host.app.test_client().post(route.format(a=chain[0]), json=build(UNSTORABLE[kind], chain))
    assert "cannot be stored" in _assert_refused(host, response, before, requests, field)


def test_an_unstorable_custom_fields_key_is_400(host: Any, chain: Tuple[int, int]) -> None:
    before, requests = snapshot(host), count_requests(host)
    response = host.app.test_client().post("/havn/payments", json={
        **PAYMENT, "project_id": chain[1], "custom_fields": {"k\x00": 1}})
    assert response.status_code == 400
    assert "cannot be stored" in json.dumps(response.get_json())
    assert snapshot(host) == before and sum(requests.values()) == 0


#: custom_fields HAVN would take but then echo in an event no receiver accepts (or that is absurdly big).
OVERSIZED_CUSTOM_FIELDS = {
    "int-beyond-64-bits": ({"n": 2 ** 64}, "custom_fields.n", "64 bits"),
    "int-below-64-bits": ({"n": rules.MIN_INT64 - 1}, "custom_fields.n", "64 bits"),
    "300-kb-text": ({"t": "x" * 300_000}, "custom_fields.t", "at most 500 characters"),
    "long-key": ({"k" * 41: 1}, "custom_fields." + "k" * 40, "1 to 40 characters"),
    "empty-key": ({"": 1}, "custom_fields.", "1 to 40 characters"),
    "over-2-kb": ({"a": "é" * 500, "b": "é" * 500, "c": "é" * 100}, "custom_fields", "at most 2048 bytes"),
}


@pytest.mark.parametrize("case", sorted(OVERSIZED_CUSTOM_FIELDS))
def test_custom_fields_are_bounded_when_the_payment_is_recorded(host: Any, chain: Tuple[int, int],
                                                                case: str) -> None:
    fields, field, text = OVERSIZED_CUSTOM_FIELDS[case]
    before, requests = snapshot(host), count_requests(host)
    response = host.app.test_client().post("/havn/payments", json={**PAYMENT, "project_id": chain[1],
                                                                    "custom_fields": fields})
    assert text in _assert_refused(host, response, before, requests, field)


def test_the_service_refuses_the_same_and_writes_nothing(host: Any, chain: Tuple[int, int]) -> None:
    before, requests = snapshot(host), count_requests(host)
    with host.app.app_context():
        problems = host.havn.payments.validate(chain[1], 1000, customer_email=email_of_length(255),
                                               custom_fields={"n": 2 ** 64}, invoice_id="I" * 101)
        with pytest.raises(Exception) as info:
            host.havn.payments.record(chain[1], 1000, customer_email=email_of_length(255))
    assert set(problems) == {"customer_email", "custom_fields.n", "invoice_id"}
    assert getattr(info.value, "status_code", None) == 400
    assert snapshot(host) == before and sum(requests.values()) == 0


def test_the_largest_accepted_custom_fields_come_back_in_an_event_that_is_applied(make_host: Any,
                                                                                   database: Any) -> None:
    """Record time accepts nothing the receiver refuses: HAVN's (the sandbox's) echo of the largest
    custom_fields in its commission.distributed event is accepted and applied to the payment."""
    from _projects_helpers import sandbox_of

    host = make_host(database=database)  # the embedded sandbox posts its events to this host
    allow(host)
    _, a_code, b_id, _ = synced_chain(host)
    fields = largest_custom_fields()
    response = host.app.test_client().post("/havn/payments", json={**PAYMENT, "project_id": b_id,
                                                                    "custom_fields": fields})
    assert response.status_code == 201, response.get_json()
    payment_id = response.get_json()["id"]
    assert sandbox_of(host).dispatcher.wait_idle(timeout=30)
    assert set(sandbox_of(host).dispatcher.statuses().values()) == {"delivered"}
    with host.app.app_context():
        (event,) = host.havn.models.WebhookEvent.query.all()
        assert (event.type, event.status, event.payment_id) == ("commission.distributed", "processed", payment_id)
        assert event.payload["data"]["transaction"]["custom_fields"] == fields
        payment = host.db.session.get(host.havn.models.Payment, payment_id)
        assert payment.custom_fields == fields
        assert [c["referral_code"] for c in payment.commissions] == [a_code]


def test_one_byte_more_than_the_largest_custom_fields_is_refused(host: Any, chain: Tuple[int, int]) -> None:
    fields = largest_custom_fields()
    last = list(fields)[-1]
    fields[last] += "x"
    before, requests = snapshot(host), count_requests(host)
    response = host.app.test_client().post("/havn/payments", json={**PAYMENT, "project_id": chain[1],
                                                                    "custom_fields": fields})
    assert "at most 2048 bytes" in _assert_refused(host, response, before, requests, "custom_fields")


def _wide_havn(field: str) -> Any:
    """A HAVN whose user-sync answer carries ``field`` wider than any of our columns (70 characters)."""
    from werkzeug.wrappers import Request, Response

    def answer(request: Request) -> Response:
        payload = json.loads(request.get_data())
        wide = "W" * 70
        if "users" in payload:  # bulk: every user synced, with a user_id too wide for our column
            results = [{"success": True, "email": u["email"], "user_id": wide, "referral_code": "HAVN-TT-001"}
                       for u in payload["users"]]
            body: Dict[str, Any] = {"success": True, "results": results, "errors": [],
                                    "summary": {"total": len(results), "success": len(results), "failed": 0}}
        else:
            values = {"user_id": "usr_1", "referral_code": "HAVN-TT-001", "associate_id": "asc_1", field: wide}
            body = {"success": True, "user_id": values["user_id"], "referral_code": values["referral_code"],
                    "associate": {"associate_id": values["associate_id"], "referral_code": values["referral_code"]}}
        return Response(json.dumps(body), status=200, content_type="application/json")
    return answer


@pytest.mark.parametrize("field", ["user_id", "referral_code", "associate_id"])
def test_an_owner_sync_answer_wider_than_our_columns_is_a_502_not_a_500(make_host: Any, database: Any,
                                                                        httpserver: Any, field: str) -> None:
    from _projects_helpers import http_config

    httpserver.expect_request("/api/v1/webhook/user-sync", method="POST").respond_with_handler(_wide_havn(field))
    host = make_host(http_config(httpserver.url_for("/").rstrip("/"), HAVN_MAX_RETRIES=0), database=database)
    allow(host)
    project_id = _new_project(host)
    response = host.app.test_client().post(f"/havn/projects/{project_id}/sync",
                                           json={"email": "owner@example.com", "name": "Owner"})
    assert response.status_code == 502, response.get_json()
    assert "70 characters" in response.get_json()["message"]
    with host.app.app_context():
        project = host.havn.models.Project.query.one()
        (owner,) = project.members
        assert (project.sync_state, project.referral_code) == ("failed", None)
        assert (owner.sync_state, owner.havn_user_id) == ("failed", None)
        assert "70 characters" in project.last_error


def test_a_member_user_id_wider_than_its_column_marks_that_member_failed(make_host: Any, database: Any,
                                                                        httpserver: Any) -> None:
    from _projects_helpers import http_config

    httpserver.expect_request("/api/v1/webhook/user-sync", method="POST").respond_with_handler(_wide_havn("x"))
    host = make_host(http_config(httpserver.url_for("/").rstrip("/"), HAVN_MAX_RETRIES=0), database=database)
    with host.app.app_context():
        project = host.havn.create_project("Team")
        project.referral_code, project.sync_state = "HAVN-TT-001", "synced"
        host.db.session.commit()
        result = host.havn.sync_members(project, [{"email": "m@example.com", "name": "M"}])
        assert result.summary.success == 1  # what HAVN said
        (member,) = project.members
        assert (member.sync_state, member.havn_user_id) == ("failed", None)
        assert "havn_user_id of 70 characters" in member.last_error

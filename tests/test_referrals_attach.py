"""Referral links, after the capture: attach to a project, the first-payment voucher, voucher checks (sandbox)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Tuple

import pytest
from flask import jsonify

from flask_havn import signals
from flask_havn.errors import HAVNValidationError
from flask_havn.referrals import LOOKUP_EMAIL, Referral
from flask_havn.webhook_testing import record_signals

from _projects_helpers import dump, quiet, sandbox_of

WHEN = datetime(2027, 1, 15, tzinfo=timezone.utc)


@pytest.fixture
def make_host(make_host: Any) -> Any:
    """Hosts whose embedded sandbox posts no events back (see _projects_helpers.quiet)."""
    return quiet(make_host)


def _upline(host: Any) -> Tuple[int, str]:
    """A synced project A (the associate whose link is shared): (id, referral code)."""
    with host.app.app_context():
        a = host.havn.create_project("Alpha Agency")
        a = host.havn.sync_owner(a, "alice@alpha.example", "Alice Alpha")
        return a.id, a.referral_code


def _voucher(host: Any, associate_code: str, **spec: Any) -> str:
    item = {"associate_code": associate_code, "type": "DISCOUNT_PERCENTAGE", "value": 2000, "min_purchase": 5000,
            "usage_limit": 10, **spec}
    return sandbox_of(host).backend.seed({"vouchers": [item]})["vouchers"][0]["code"]


def _host_with_signup(make_host: Any) -> Any:
    """A host with capture on and a sign-up route that creates a project and attaches the captured link."""
    host = make_host({"SECRET_KEY": "attach-test-key", "HAVN_CAPTURE_REFERRALS": True})

    @host.app.route("/signup", methods=["GET", "POST"])
    def signup() -> Any:
        from flask import request

        if request.method == "GET":
            return jsonify("form")
        project = host.havn.create_project(request.form["name"])
        try:
            outcome = host.havn.attach_referral(project)
        except HAVNValidationError as exc:
            return jsonify({"project": project.id, "error": exc.message}), 400
        return jsonify({"project": project.id, "attached": outcome.attached, "reason": outcome.reason})

    return host


def test_signup_after_a_link_attaches_the_code_remembers_the_voucher_and_clears_the_cookie(make_host: Any) -> None:
    host = _host_with_signup(make_host)
    _, code = _upline(host)
    voucher = _voucher(host, code)
    with record_signals(signals.referral_attached) as sent:
        client = host.app.test_client()
        client.get(f"/signup?ref={code.lower()}&vc={voucher}")
        response = client.post("/signup", data={"name": "Carol's Shop"})
    assert response.status_code == 200 and response.json["attached"] is True
    assert [(s.sender, s.kwargs["project"].upline_referral_code, s.kwargs["referral"].voucher) for s in sent] == \
        [(host.app, code, voucher)]
    assert client.get_cookie("havn_referral") is None  # cleared by the sign-up response
    with host.app.app_context():
        project = host.havn.projects.get(response.json["project"])
        assert (project.upline_referral_code, project.referral_voucher_code, project.referral_voucher_used_at) == \
            (code, voucher, None)
    # The lookup was a test-mode dry run: the sandbox keeps no user for it.
    assert LOOKUP_EMAIL not in [u["email"] for u in dump(sandbox_of(host))["users"]]


def test_a_second_attach_changes_nothing(make_host: Any) -> None:
    host = make_host()
    _, code = _upline(host)
    with record_signals(signals.referral_attached) as sent, host.app.app_context():
        b = host.havn.create_project("Beta")
        first = host.havn.attach_referral(b, Referral(code, "DISC50", WHEN))
        second = host.havn.attach_referral(b, Referral(code, "OTHER", WHEN))
    assert [s.kwargs["referral"].voucher for s in sent] == ["DISC50"]  # the second attach announces nothing
    with host.app.app_context():
        assert first.attached and not second.attached
        assert "already has the upline" in second.reason
        b = host.havn.projects.get(b.id)
        assert (b.upline_referral_code, b.referral_voucher_code) == (code, "DISC50")


def test_an_unknown_code_is_refused_and_nothing_changes(make_host: Any) -> None:
    host = _host_with_signup(make_host)
    _upline(host)
    client = host.app.test_client()
    client.get("/signup?ref=HAVN-NO-404&vc=DISC50")
    response = client.post("/signup", data={"name": "Dora"})
    assert response.status_code == 400
    assert "HAVN-NO-404 is not a referral code HAVN knows" in response.json["error"]
    with host.app.app_context():
        project = host.havn.projects.get(response.json["project"])
        assert (project.upline_referral_code, project.referral_voucher_code) == (None, None)
    assert client.get_cookie("havn_referral") is not None  # nothing changed: the host decides (forget())


def test_a_synced_project_without_upline_is_left_alone(make_host: Any) -> None:
    host = make_host()
    a_id, code = _upline(host)
    with host.app.app_context():
        c = host.havn.create_project("Gamma")
        c = host.havn.sync_owner(c, "gina@gamma.example", "Gina")
        outcome = host.havn.attach_referral(c, Referral(code, None, WHEN))
        assert not outcome.attached and "cannot give an associate an upline afterwards" in outcome.reason
        assert host.havn.projects.get(c.id).upline_referral_code is None


def test_nothing_captured_attaches_nothing(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        b = host.havn.create_project("Beta")
        outcome = host.havn.attach_referral(b)
        assert not outcome and outcome.referral is None


def test_the_first_payment_sends_the_voucher_and_later_ones_never(make_host: Any) -> None:
    host = make_host()
    _, code = _upline(host)
    voucher = _voucher(host, code)
    with host.app.app_context():
        b = host.havn.create_project("Beta")
        assert host.havn.attach_referral(b, Referral(code, voucher, WHEN))
        b = host.havn.sync_owner(b, "bob@beta.example", "Bob")
        first = host.havn.record_payment(b, 8000, customer_email="bob@beta.example", subtotal=10000,
                                         payment_gateway_transaction_id="pi_first")
        assert (first.voucher_code, first.delivery_state) == (voucher, "sent")
        assert host.havn.projects.get(b.id).referral_voucher_used_at is not None
        second = host.havn.record_payment(b, 10000, customer_email="bob@beta.example",
                                          payment_gateway_transaction_id="pi_second")
        assert (second.voucher_code, second.delivery_state) == (None, "sent")
    txns = {t["payment_gateway_transaction_id"]: t for t in dump(sandbox_of(host))["transactions"]}
    assert (txns["pi_first"]["referral_code"], txns["pi_first"]["promo_code"]) == (code, voucher)
    assert txns["pi_first"]["acquisition_method"] == "REFERRAL_VOUCHER"
    assert (txns["pi_second"]["referral_code"], txns["pi_second"]["promo_code"]) == (code, None)
    assert txns["pi_second"]["acquisition_method"] == "REFERRAL"


def test_a_local_voucher_is_kept_on_the_payment_but_never_sent(make_host: Any) -> None:
    host = make_host()
    _, code = _upline(host)
    with host.app.app_context():
        b = host.havn.create_project("Beta")
        host.havn.attach_referral(b, Referral(code, "DISC50", WHEN))
        b = host.havn.sync_owner(b, "bob@beta.example", "Bob")
        payment = host.havn.record_payment(b, 5000, customer_email="bob@beta.example",
                                           payment_gateway_transaction_id="pi_local")
        assert payment.voucher_code == "DISC50"
    (txn,) = dump(sandbox_of(host))["transactions"]
    assert txn["promo_code"] is None


def test_voucher_outcomes_against_the_sandbox(make_host: Any) -> None:
    host = make_host()
    _, code = _upline(host)
    good = _voucher(host, code)
    expired = _voucher(host, code, start_date="2020-01-01", end_date="2020-12-31")
    inactive = _voucher(host, code, active=False)
    with host.app.app_context():
        checks = [host.havn.validate_voucher(good, 10000, "USD"), host.havn.validate_voucher(expired, 10000),
                  host.havn.validate_voucher(inactive), host.havn.validate_voucher("HAVN-NO-SUCH-1", 10000),
                  host.havn.validate_voucher(good, 1000, "USD")]
        with pytest.raises(HAVNValidationError, match="amount"):
            host.havn.validate_voucher(good, -5)
    assert [(c.valid, c.status, c.status_code) for c in checks] == [
        (True, "valid", 200), (False, "unusable", 400), (False, "unusable", 400), (False, "unknown", 404),
        (False, "below_minimum", 422)]
    assert checks[0] and not checks[1]
    assert checks[3].message == "Voucher HAVN-NO-SUCH-1 does not exist; check the code."
    assert "expired" in checks[1].detail


def test_a_racing_first_payment_loses_the_voucher(make_host: Any) -> None:
    """Two requests both saw "no payment yet": the conditional update lets only one send the voucher."""
    from flask_havn.referrals import first_payment_voucher, use_referral_voucher
    from flask_havn.state import get_state

    host = make_host({"HAVN_DELIVERY": "worker"})
    _, code = _upline(host)
    with host.app.app_context():
        b = host.havn.create_project("Beta")
        host.havn.attach_referral(b, Referral(code, "HAVN-X-SE-1", WHEN))
        state = get_state()
        seen_by_the_slower_request = first_payment_voucher(state, b.id)
        assert seen_by_the_slower_request is not None
        first = host.havn.record_payment(b, 5000, customer_email="bob@beta.example")
        assert first.voucher_code == "HAVN-X-SE-1"
        late = host.havn.models.Payment(voucher_code="HAVN-X-SE-1")
        assert use_referral_voucher(state, seen_by_the_slower_request, late) is False
        assert late.voucher_code is None
        assert first_payment_voucher(state, b.id) is None

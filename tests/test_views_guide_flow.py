"""The integration guide's flow end to end, through the routes, against the sandbox over real HTTP."""
from __future__ import annotations

from typing import Any

from _projects_helpers import allow, dump, http_config


def test_the_guides_four_steps(make_host: Any, havn_sandbox: Any) -> None:
    host = make_host(http_config(havn_sandbox.url))
    allow(host)
    client = host.app.test_client()

    # 1. Create project A and sync its owner: A gets its referral code.
    a = client.post("/havn/projects", json={"project_name": "Agency A"}).get_json()
    synced = client.post(f"/havn/projects/{a['id']}/sync", json={"email": "owner@a.example", "name": "Ada Owner"})
    assert synced.status_code == 200
    a_code = synced.get_json()["referral_code"]

    # 2. Sync A's team: 120 partners in 3 batches, all linked to A's code.
    team = [{"email": f"partner{n}@a.example", "name": f"Partner {n}"} for n in range(120)]
    members = client.post(f"/havn/projects/{a['id']}/members", json={"users": team})
    assert members.status_code == 200
    assert members.get_json()["summary"] == {"total": 120, "success": 120, "errors": 0}

    # 4. Projects refer projects: B signs up with A's code and is synced under A.
    b = client.post("/havn/projects", json={"project_name": "Shop B", "upline_referral_code": a_code}).get_json()
    b_synced = client.post(f"/havn/projects/{b['id']}/sync", json={"email": "owner@b.example", "name": "Bo Owner"})
    b_code = b_synced.get_json()["referral_code"]
    assert b_code != a_code

    # 3. A completed payment in B reaches HAVN with A's code; A's associate earns level 1.
    paid = client.post("/havn/payments", json={
        "project_id": b["id"], "amount_cents": 10000, "currency": "USD", "customer_email": "buyer@example.com",
        "payment_gateway": "STRIPE", "payment_gateway_transaction_id": "pi_guide_b"})
    assert paid.status_code == 201
    b_payment = paid.get_json()
    assert (b_payment["delivery_state"], b_payment["total_commission"]) == ("sent", 500)

    # A payment in A (no upline) is platform revenue.
    own = client.post("/havn/payments", json={
        "project_id": a["id"], "amount_cents": 7000, "currency": "USD", "customer_email": "buyer2@example.com",
        "payment_gateway": "STRIPE", "payment_gateway_transaction_id": "pi_guide_a"}).get_json()
    assert (own["delivery_state"], own["commissions"], own["total_commission"]) == ("sent", [], 0)

    state = dump(havn_sandbox)
    associates = {row["referral_code"]: row for row in state["associates"]}
    assert associates[b_code]["upline_id"] == associates[a_code]["associate_id"]
    partners = [u for u in state["users"] if u["email"].startswith("partner")]
    assert len(partners) == 120
    assert {u["member_of_id"] for u in partners} == {associates[a_code]["associate_id"]}
    txns = {t["payment_gateway_transaction_id"]: t for t in state["transactions"]}
    assert txns["pi_guide_b"]["referral_code"] == a_code  # the upline's code, never B's own
    assert txns["pi_guide_a"]["referral_code"] is None
    assert txns["pi_guide_a"]["platform_amount"] == 7000
    (commission,) = state["commissions"]
    assert (commission["transaction_id"], commission["associate_id"], commission["level"], commission["amount"]) \
        == (txns["pi_guide_b"]["transaction_id"], associates[a_code]["associate_id"], 1, 500)
    assert b_payment["havn_transaction_id"] == txns["pi_guide_b"]["transaction_id"]

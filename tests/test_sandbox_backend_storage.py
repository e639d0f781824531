"""Sandbox backend storage: file persistence, no id re-issue, seeded determinism, reset, threads."""
from __future__ import annotations

import re
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List

from flask_havn.sandbox.backend import SandboxBackend
from flask_havn.sandbox.settings import SandboxSettings

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc)


def txn(pg: str, **extra: Any) -> Dict[str, Any]:
    return {"amount": 10000, "payment_gateway_transaction_id": pg, "payment_gateway": "STRIPE",
            "customer_email": "c@example.com", "referral_code": "HAVN-JD-001", **extra}


def script(backend: SandboxBackend) -> List[Any]:
    """A fixed sequence of calls; returns every answer."""
    answers: List[Any] = [backend.seed({"associates": [{"name": "Top Dog"}],
                                        "vouchers": [{"associate_code": "HAVN-TD-001", "type": "DISCOUNT_FIXED",
                                                      "value": 100}]})]
    answers.append(backend.user_sync({"email": "john@example.com", "name": "John Doe",
                                      "upline_code": "HAVN-TD-001"}).body)
    answers.append(backend.transaction(txn("pg_1"), idempotency_key="k").body)
    answers.append(backend.transaction(txn("pg_2"), test_mode=True).body)
    answers.append(backend.transaction(txn("pg_3", amount=4321)).body)
    answers.append(backend.login({"email": "john@example.com"}, frontend_url="https://f").body)
    answers.append(backend.list_vouchers({}).body)
    answers.append(backend.dump())
    return answers


def test_same_seed_same_calls_give_identical_answers() -> None:
    a = SandboxBackend(SandboxSettings(seed=42), clock=lambda: NOW)
    b = SandboxBackend(SandboxSettings(seed=42), clock=lambda: NOW)
    c = SandboxBackend(SandboxSettings(seed=43), clock=lambda: NOW)
    try:
        first, second, other = script(a), script(b), script(c)
        assert first == second
        assert first[2]["transaction"]["transaction_id"] != other[2]["transaction"]["transaction_id"]
        assert first[0]["vouchers"][0]["code"] != other[0]["vouchers"][0]["code"]
    finally:
        a.close()
        b.close()
        c.close()


def test_ids_have_a_readable_shape_and_are_unique_without_seed() -> None:
    b = SandboxBackend(SandboxSettings())
    try:
        b.seed({"associates": [{"name": "John Doe"}]})
        ids = [b.transaction(txn(f"pg_{i}")).body["transaction"]["transaction_id"] for i in range(20)]
        assert all(re.match(r"^txn_\d{6}[0-9a-f]{6}$", i) for i in ids)
        assert len(set(ids)) == 20
    finally:
        b.close()


def test_reset_drops_everything_and_restarts_ids() -> None:
    b = SandboxBackend(SandboxSettings(seed=1), clock=lambda: NOW)
    try:
        first = script(b)
        b.set_rates({"IDR": "0.0001"})
        b.reset()
        assert b.dump()["counts"] == {k: 0 for k in first[-1]["counts"]}
        assert b.dump()["rates"]["IDR"] == "0.0000633"
        assert script(b) == first
    finally:
        b.close()


def test_file_database_survives_restart_and_never_reissues(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'havn.db'}"
    one = SandboxBackend(SandboxSettings(database_uri=uri, seed=5), clock=lambda: NOW)
    try:
        one.seed({"associates": [{"name": "John Doe"}]})
        first = one.transaction(txn("pg_1")).body
        before = one.dump()
    finally:
        one.close()

    two = SandboxBackend(SandboxSettings(database_uri=uri, seed=5), clock=lambda: NOW)
    try:
        assert two.dump() == before
        replay = two.transaction(txn("pg_1"))
        assert replay.body == first and replay.events == []
        new = two.transaction(txn("pg_2")).body
        synced = two.user_sync({"email": "jane@example.com", "name": "Jane Dune"}).body
        after = two.dump()
    finally:
        two.close()
    assert synced["referral_code"] == "HAVN-JD-002"
    assert new["transaction"]["transaction_id"] != first["transaction"]["transaction_id"]
    old_commissions = {c["commission_id"] for c in before["commissions"]}
    new_commissions = {c["commission_id"] for c in new["commissions"]}
    assert old_commissions and new_commissions and not (old_commissions & new_commissions)
    assert after["counts"]["transactions"] == 2
    associate_ids = [a["associate_id"] for a in after["associates"]]
    assert len(set(associate_ids)) == len(associate_ids) == 2


def test_concurrent_calls_on_in_memory_database() -> None:
    b = SandboxBackend(SandboxSettings())
    b.seed({"associates": [{"name": "Top"}, {"name": "John Doe", "upline_code": "HAVN-TX-001"}]})
    errors: List[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                b.transaction(txn(f"pg_{n}_{i}"))
                b.user_sync({"email": f"u{n}_{i}@example.com", "name": "Same Initials"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        dump = b.dump()
        assert dump["counts"]["transactions"] == 60 and dump["counts"]["commissions"] == 120
        codes = [a["referral_code"] for a in dump["associates"]]
        assert len(set(codes)) == len(codes) == 62
        assert {c for c in codes if c.startswith("HAVN-SI-")} == {f"HAVN-SI-{n:03d}" for n in range(1, 61)}
        assert len({t["transaction_id"] for t in dump["transactions"]}) == 60
    finally:
        b.close()


def test_repr_hides_secrets() -> None:
    b = SandboxBackend(SandboxSettings(api_key="very-secret-key", webhook_secret="very-secret-hook"))
    try:
        assert "very-secret" not in repr(b) and "very-secret" not in repr(b.settings)
    finally:
        b.close()

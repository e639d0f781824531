"""Helpers shared by the projects/payments/delivery tests (services, views, delivery, CLI)."""
from __future__ import annotations

import io
import json
import threading
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from flask_havn.config import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET

#: Rate limits high enough that hundreds of deliveries never hit the sandbox's real limiter.
UNLIMITED = {"transaction": 1_000_000, "user_sync": 1_000_000, "voucher_validate": 1_000_000,
             "vouchers": 1_000_000, "login": 1_000_000}

#: Host settings for fast failure handling: no transport retries/sleeps, immediate delivery re-attempts.
FAST_RETRY = {"HAVN_MAX_RETRIES": 0, "HAVN_BACKOFF_FACTOR": 0, "HAVN_TIMEOUT": 5,
              "HAVN_DELIVERY_BACKOFF": 0, "HAVN_DELIVERY_MAX_BACKOFF": 0}


def quiet(make_host: Callable[..., Any]) -> Callable[..., Any]:
    """``make_host`` whose embedded sandbox posts no events back to the host.

    The host's webhook receiver updates payments from those events on another
    thread; tests asserting exact delivery fields use quiet hosts, and
    tests/test_delivery_events.py covers the interplay.
    """
    def factory(config: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Any:
        return make_host({"HAVN_SANDBOX_WEBHOOK_URL": None, **(config or {})}, **kwargs)
    return factory


def http_config(url: str, **extra: Any) -> Dict[str, Any]:
    """Host config talking to a sandbox over real HTTP at ``url``."""
    config = {"HAVN_SANDBOX": False, "HAVN_BASE_URL": url, "HAVN_API_KEY": SANDBOX_API_KEY,
              "HAVN_WEBHOOK_SECRET": SANDBOX_WEBHOOK_SECRET}
    config.update(extra)
    return config


def fast_sqlite(host: Any) -> Any:
    """Put the host's SQLite file in WAL mode without fsync per commit (a test-speed setting, not ours)."""
    import sqlalchemy as sa

    def pragmas(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    with host.app.app_context():
        engine = host.db.engine
        sa.event.listen(engine, "connect", pragmas)
        engine.dispose()
    return host


def sandbox_of(host: Any) -> Any:
    """The in-process sandbox's SandboxState of a host built with ``HAVN_SANDBOX=True``."""
    return host.app.extensions["havn"].sandbox_app.extensions["havn_sandbox"]


def allow(host: Any) -> None:
    """Open the host's HAVN routes to every request (what a test host with no users does)."""
    host.havn.authorize(lambda: True)


def synced_chain(host: Any) -> Tuple[int, str, int, str]:
    """The guide's first steps: project A synced; project B referred by A, synced. (a_id, a_code, b_id, b_code)."""
    with host.app.app_context():
        a = host.havn.create_project("Alpha Agency")
        a = host.havn.sync_owner(a, "alice@alpha.example", "Alice Alpha")
        b = host.havn.create_project("Beta Shop", upline_referral_code=a.referral_code)
        b = host.havn.sync_owner(b, "bob@beta.example", "Bob Beta")
        return a.id, a.referral_code, b.id, b.referral_code


def record_many(host: Any, project_id: int, count: int, *, prefix: str = "pay") -> List[int]:
    """Record ``count`` completed USD payments (ids ``prefix-N``) in one transaction, without delivering."""
    with host.app.app_context():
        Payment = host.havn.models.Payment
        rows = [Payment(project_id=project_id, amount=1000 + n, currency="USD", status="completed",
                        customer_email=f"customer{n}@example.com", payment_gateway="STRIPE",
                        payment_gateway_transaction_id=f"{prefix}-{n}", delivery_state="pending", attempts=0)
                for n in range(count)]
        host.db.session.add_all(rows)
        host.db.session.commit()
        return [row.id for row in rows]


def drain(host: Any, *, max_passes: int = 200, concurrency: int = 1) -> int:
    """Run delivery passes until nothing is due; the number of passes (fails if it never settles)."""
    from flask_havn import delivery

    with host.app.app_context():
        for number in range(1, max_passes + 1):
            delivery.deliver_due(concurrency=concurrency)
            if delivery.count_due() == 0:
                return number
    raise AssertionError(f"payments still due after {max_passes} delivery passes")


def states(host: Any) -> Counter:
    """Counter of delivery_state over every payment of the host."""
    with host.app.app_context():
        Payment = host.havn.models.Payment
        return Counter(state for (state,) in host.db.session.query(Payment.delivery_state))


class TransactionCounter:
    """WSGI middleware in front of a sandbox: counts transaction requests per gateway id that reached it
    (``counts``), and every request by path (``paths``)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.counts: Counter = Counter()
        self.paths: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self._lock:
            self.paths[environ.get("PATH_INFO", "")] += 1
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO", "").endswith("/webhook/transaction"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            try:
                gateway_id = json.loads(body).get("payment_gateway_transaction_id")
            except ValueError:
                gateway_id = None
            with self._lock:
                self.counts[gateway_id] += 1
        return self.app(environ, start_response)


def dump(server_or_state: Any) -> Mapping[str, Any]:
    """The sandbox's state dump (transactions, commissions, users…)."""
    state = getattr(server_or_state, "state", server_or_state)
    return state.backend.dump()


def by_gateway_id(transactions: Iterable[Mapping[str, Any]]) -> Dict[Optional[str], List[Mapping[str, Any]]]:
    grouped: Dict[Optional[str], List[Mapping[str, Any]]] = {}
    for txn in transactions:
        grouped.setdefault(txn.get("payment_gateway_transaction_id"), []).append(txn)
    return grouped

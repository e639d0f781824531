"""Webhook ingest: verified events per second through the whole receiver against a bare Flask route.

Both take HAVN's signed ``commission.distributed`` events through the same
Flask app, in-process (Werkzeug's test client), on the same SQLite file. Ours
is ``POST /havn/webhooks``: size check, signature, envelope and column checks,
store once, match the payment, apply, signals, commit. The baseline is the
floor of the job: a bare route that parses the JSON and inserts one row shaped
like ``havn_webhook_events`` with the ORM, then commits. Two cases: (a) every
event names an existing payment (a different one each time) whose delivery
already recorded HAVN's synchronous answer, as events usually come, (b) none
names a payment the app knows; and, for reading, (a) as the first news of the
transaction (the answer was lost: the event writes HAVN's data). Printed: seconds per event of each, the throughput
ratio (ours / bare events per second; goal ≥ 0.75). The SQLite file is as a
host has it (rollback journal, a sync per commit); the same figures with
``PRAGMA synchronous=OFF`` follow for reading: CPU only, the harder ratio;
then case (a) again with a ``commission_distributed`` receiver connected (ours
then loads each Payment as the ORM row it hands over), for reading.
``--quick``: a few events.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Tuple

import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN
from flask_havn.events import COMMISSION_DISTRIBUTED
from flask_havn.models import utcnow
from flask_havn.signals import commission_distributed
from flask_havn.webhook_testing import sample_event, sign_webhook
from flask_havn.webhooks import get_receiver

from ._outbox_rows import add_payments, add_project
from ._timing import best_of_alternating

SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC0wMTIzNDU2Nzg5"
#: Ours must reach at least this share of the bare route's events per second.
GOAL = 0.75
#: (a) events naming an existing payment, as they usually come: after delivery recorded HAVN's synchronous
#: answer, which they repeat; (b) events naming no payment the app knows; and, for reading, (a) when the
#: event is the first news of the transaction (the answer was lost): the payment gets HAVN's data from it.
CASES = ("matched", "unknown", "first news")
GOAL_CASES = ("matched", "unknown")


def _no_sync(connection: Any, record: Any) -> None:
    connection.execute("PRAGMA synchronous=OFF")


def _host(folder: str, payments: int, *, sync: bool = True) -> Tuple[Flask, Any]:
    """The app: flask_havn's receiver and the bare route side by side on one SQLite file."""
    app = Flask("bench_ingest")
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder}/ingest.sqlite", HAVN_API_KEY="ak_bench",
                      HAVN_WEBHOOK_SECRET=SECRET, HAVN_BASE_URL="http://havn.invalid", HAVN_DELIVERY="worker")
    db = SQLAlchemy(app)
    HAVN(app, db=db)

    # The bare route's row: a table with the columns (and indexes) of havn_webhook_events.
    with app.app_context():
        table = app.extensions["havn"].models.WebhookEvent.__table__.to_metadata(db.metadata, name="bare_webhook_events")
    BareEvent = type("BareEvent", (db.Model,), {"__table__": table})

    @app.post("/bare")
    def bare() -> Any:
        envelope = json.loads(request.get_data())
        db.session.add(BareEvent(id=envelope["id"], type=envelope["type"], payload=envelope,
                                 test_mode=bool(envelope.get("test_mode")), status="received", attempts=1,
                                 event_created_at=envelope.get("created_at"), received_at=utcnow()))
        db.session.commit()
        return jsonify(received=True, id=envelope["id"])

    with app.app_context():
        if not sync:
            sa.event.listen(db.engine, "connect", _no_sync)
        db.create_all()
        add_project(db.session)
        add_payments(db.session, (f"pi_bench_{n}" for n in range(payments)), state="sent", amount=100000,
                     invoices=True)
        db.session.commit()
    return app, BareEvent


def _envelopes(case: str, count: int) -> List[Dict[str, Any]]:
    """``count`` events; in the matched cases each names another existing payment (``pi_bench_<n>``)."""
    envelopes = []
    for n in range(count):
        payment = None
        if case != "unknown":
            payment = SimpleNamespace(amount=100000, currency="USD", invoice_id=f"INV-{n}",
                                      payment_gateway_transaction_id=f"pi_bench_{n}",
                                      havn_transaction_id=f"txn_bench_{n}")
        envelopes.append(sample_event(COMMISSION_DISTRIBUTED, payment=payment))
    return envelopes


def _record_answers(app: Flask, envelopes: List[Dict[str, Any]]) -> None:
    """Give each named payment what delivery records from HAVN's answer: the event then repeats it."""
    with app.app_context():
        session = app.extensions["havn"].db.session
        session.execute(
            sa.text("UPDATE havn_payments SET havn_transaction_id = :txn, commissions = :commissions, "
                    "total_commission = :total, sent_at = :now WHERE payment_gateway_transaction_id = :gw"),
            [{"txn": e["data"]["transaction"]["transaction_id"], "commissions": json.dumps(e["data"]["commissions"]),
              "total": e["data"]["total_commission"], "now": utcnow(),
              "gw": e["data"]["transaction"]["payment_gateway_transaction_id"]} for e in envelopes])
        session.commit()


def _signed(envelopes: List[Dict[str, Any]], timestamp: int) -> List[Tuple[bytes, Dict[str, str]]]:
    return [sign_webhook(envelope, SECRET, timestamp=timestamp) for envelope in envelopes]


def _poster(app: Flask, path: str, events: List[Tuple[bytes, Dict[str, str]]]) -> Callable[[], None]:
    client = app.test_client()
    queue = iter(events)

    def post() -> None:
        body, headers = next(queue)
        response = client.post(path, data=body, headers=headers)
        if response.status_code != 200:
            raise AssertionError(f"{path} answered {response.status_code}: {response.get_data(as_text=True)}")

    return post


def measure(*, number: int, rounds: int, sync: bool = True, cases: Tuple[str, ...] = CASES,
            with_receiver: bool = False) -> Dict[str, Dict[str, float]]:
    """Seconds per event of ``ours`` and ``bare`` for each case, taking turns round by round.

    ``with_receiver``: a (no-op) ``commission_distributed`` receiver is connected
    for the app, so ours loads each matched Payment as the ORM row it is handed.
    Checks afterwards that every event was stored (and, when matched, applied
    to its payment), so a broken receiver cannot look fast.
    """
    total = number * rounds
    figures: Dict[str, Dict[str, float]] = {}
    timestamp = int(time.time())
    handed: List[Any] = []
    for case in cases:
        with tempfile.TemporaryDirectory() as folder:
            app, bare_model = _host(folder, total, sync=sync)
            get_receiver(app).clock = lambda: float(timestamp)
            receiver = None
            if with_receiver:
                def receiver(sender: Any, payment: Any, **kwargs: Any) -> None:
                    handed.append(payment is not None)

                commission_distributed.connect(receiver, sender=app, weak=False)
            ours = _envelopes(case, total)
            if case == "matched":
                _record_answers(app, ours)
            candidates = {
                "ours": _poster(app, "/havn/webhooks", _signed(ours, timestamp)),
                "bare": _poster(app, "/bare", _signed(_envelopes(case, total), timestamp)),
            }
            figures[case] = best_of_alternating(candidates, rounds=rounds, number=number)
            with app.app_context():
                state = app.extensions["havn"]
                session, Event, Payment = state.db.session, state.models.WebhookEvent, state.models.Payment
                stored = session.execute(sa.select(sa.func.count()).select_from(Event)
                                         .where(Event.status == "processed")).scalar_one()
                matched = session.execute(sa.select(sa.func.count()).select_from(Event)
                                          .where(Event.payment_id.is_not(None))).scalar_one()
                applied = session.execute(sa.select(sa.func.count()).select_from(Payment)
                                          .where(Payment.total_commission.is_not(None))).scalar_one()
                bare = session.execute(sa.select(sa.func.count()).select_from(bare_model)).scalar_one()
                state.db.engine.dispose()
            expected = 0 if case == "unknown" else total
            if receiver is not None:
                commission_distributed.disconnect(receiver, sender=app)
                if handed.count(True) != expected:
                    raise AssertionError(f"{case}: the receiver was handed {handed.count(True)} payments")
                handed.clear()
            if (stored, bare, matched, applied) != (total, total, expected, expected):
                raise AssertionError(f"{case}: stored {stored}, bare {bare}, matched {matched}, applied {applied} "
                                     f"of {total} events")
    return figures


def print_figures(figures: Dict[str, Dict[str, float]], *, sync: bool = True, note: str = "") -> None:
    for case, times in figures.items():
        ratio = times["bare"] / times["ours"]
        label = "first news of a payment" if case == "first news" else f"{case} payment"
        name = f"webhook ingest, {label}" + ("" if sync else ", no sync") + note
        with_goal = sync and not note and case in GOAL_CASES
        verdict = f"goal ≥ {GOAL:.2f} ({'met' if ratio >= GOAL else 'NOT met'})" if with_goal else "for reading"
        print(f"{name:<50} ours {times['ours'] * 1e6:9.1f} µs   bare route {times['bare'] * 1e6:9.1f} µs   "
              f"events/s ratio {ratio:5.2f}   {verdict}")


def run(quick: bool = False) -> Dict[str, Dict[str, float]]:
    number, rounds = (20, 2) if quick else (100, 15)
    figures = measure(number=number, rounds=rounds)
    print_figures(figures)
    print_figures(measure(number=number, rounds=rounds, sync=False), sync=False)
    print_figures(measure(number=number, rounds=rounds, cases=("matched",), with_receiver=True), note=", receiver")
    return figures


if __name__ == "__main__":
    run("--quick" in sys.argv)

"""A long outbox: one delivery pass over many due payments keeps a constant cost per claim.

The pass hands out due ids behind a cursor (flask_havn.outbox.claims.DuePass).
Printed: the time per claim over the LAST window of the pass against the FIRST
window of the same pass (a ratio near 1.0 means constant cost), and the 0.1
approach — ``NOT IN (every id processed so far)`` with each claim — measured
over the same windows for comparison. Claims only: nothing is sent, so HAVN's
latency does not hide the database work. ``--quick``: 3,000 payments;
otherwise 100,000 (the issue's figure).
"""
from __future__ import annotations

import sys
import tempfile
import time
from typing import Any, Callable, List, Optional, Set

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN
from flask_havn.models import utcnow
from flask_havn.outbox.claims import DuePass, claim, due, lease_seconds
from flask_havn.state import get_state

from ._outbox_rows import add_payments, add_project

WINDOW = 500


def _host(folder: str, count: int) -> Flask:
    app = Flask("bench_outbox")
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder}/outbox.sqlite", HAVN_SANDBOX=True,
                      HAVN_DELIVERY="worker", HAVN_SANDBOX_WEBHOOK_URL=None)
    db = SQLAlchemy(app)
    HAVN(app, db=db)
    with app.app_context():
        # No fsync per commit: the claim's SQL, not the disk, is what this measures.
        sa.event.listen(db.engine, "connect", _no_fsync)
        db.engine.dispose()
        db.create_all()
        add_project(db.session)
        add_payments(db.session, (f"bench-{n}" for n in range(count)))
        db.session.commit()
    return app


def _no_fsync(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def _timed_pass(app: Flask, take: Callable[[Any, Set[int]], Optional[int]], count: int) -> List[float]:
    """Seconds per claim of each window of ``WINDOW`` claims, over a whole pass."""
    windows: List[float] = []
    with app.app_context():
        state = get_state()
        seen: Set[int] = set()
        started = time.perf_counter()
        while True:
            payment_id = take(state, seen)
            if payment_id is None:
                break
            seen.add(payment_id)
            if len(seen) % WINDOW == 0:
                now = time.perf_counter()
                windows.append((now - started) / WINDOW)
                started = now
    assert len(seen) == count, (len(seen), count)
    return windows


def _cursor_pass(app: Flask) -> Callable[[Any, Set[int]], Optional[int]]:
    with app.app_context():
        due_pass = DuePass(get_state())
    return lambda state, seen: due_pass.claim_next(state, "bench")


def _not_in(state: Any, seen: Set[int]) -> Optional[int]:
    """The 0.1 claim: the oldest due id not in every id processed so far, then the conditional UPDATE."""
    Payment = state.models.Payment
    query = sa.select(Payment.id).where(due(Payment, utcnow(), lease_seconds(state.config)))
    if seen:
        query = query.where(Payment.id.not_in(list(seen)))
    payment_id = state.session.execute(query.order_by(Payment.id).limit(1)).scalar()
    state.session.rollback()
    if payment_id is None:
        return None
    claim(state, payment_id, worker_id="bench")
    return int(payment_id)


def run(quick: bool) -> None:
    count = 2_000 if quick else 100_000
    # SQLite refuses more than 32,766 bound variables: the 0.1 pass fails outright past that.
    old_count = min(count, 10_000)
    with tempfile.TemporaryDirectory() as folder:
        app = _host(folder, count)
        ours = _timed_pass(app, _cursor_pass(app), count)
        print(f"{'outbox pass: ' + format(count, ',') + ' due, cursor (ours)':<44} first {ours[0] * 1e6:7.0f} µs/claim"
              f"   last {ours[-1] * 1e6:7.0f} µs/claim   ratio last/first {ours[-1] / ours[0]:5.2f}   goal ≈ 1")
    with tempfile.TemporaryDirectory() as folder:
        app = _host(folder, old_count)
        old = _timed_pass(app, _not_in, old_count)
        print(f"{'outbox pass: ' + format(old_count, ',') + ' due, NOT IN (0.1)':<44} first {old[0] * 1e6:7.0f} µs/claim"
              f"   last {old[-1] * 1e6:7.0f} µs/claim   ratio last/first {old[-1] / old[0]:5.2f}")


if __name__ == "__main__":
    run("--quick" in sys.argv)

"""In-memory SQLite is one connection every thread shares: the embedded sandbox's event deliveries (on a
thread of their own) must not interleave with recording a payment or a delivery attempt on it. Seen in CI
as "cannot start a transaction within a transaction" (Python 3.9, README example, a payment left
undelivered); without the lock the loop below fails with "no such savepoint" every time."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import sqlalchemy as sa


def test_the_lock_is_taken_only_on_a_shared_connection(make_host: Any) -> None:
    in_memory = make_host({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    on_file = make_host()
    with in_memory.app.app_context():
        assert in_memory.app.extensions["havn"].shared_connection() is in_memory.app.extensions["havn"].in_process_lock
    with on_file.app.app_context():
        assert isinstance(on_file.app.extensions["havn"].shared_connection(), nullcontext)


def test_inline_payments_and_their_events_on_an_in_memory_database(make_host: Any) -> None:
    host = make_host({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    sandbox = host.app.extensions["havn"].sandbox_app.extensions["havn_sandbox"]
    with host.app.app_context():
        project = host.havn.projects.create("Acme")
        host.havn.projects.sync_owner(project, email="ada@acme.test", name="Ada Lee")
        referred = host.havn.projects.create("Bolt", upline_referral_code=project.referral_code)
        states = [host.havn.payments.record(referred, 1000 + n, "USD", customer_email=f"c{n}@example.com")
                  .delivery_state for n in range(25)]
    assert states == ["sent"] * 25
    assert sandbox.dispatcher.wait_idle(timeout=30)
    with host.app.app_context():
        Event = host.havn.models.WebhookEvent
        statuses = host.db.session.execute(sa.select(Event.status)).scalars().all()
    assert len(statuses) == 25 and set(statuses) == {"processed"}

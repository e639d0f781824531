"""``flask havn trigger`` and ``flask havn webhooks [list|replay]``: the webhook receiver from a shell.

``trigger`` is ``stripe trigger`` for HAVN: it builds a realistic event, signs
it with the app's webhook secret and POSTs it to the app's own endpoint (in
process by default, or over HTTP to ``--url``). Its events are test-mode
events: they change only payments recorded in test mode, and ``--payment``
naming a live one is refused unless ``--force`` (which lists the changes).
``webhooks`` lists stored events; ``webhooks replay ID`` processes a stored
event again — its signals are sent again, so receivers must tolerate that.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from ..events import COMMISSION_DISTRIBUTED, CONVERSION_FAILED, Event, apply_event
from ..models import EVENT_STATUSES, utcnow
from ..rules import MAX_ID
from ..webhook_testing import sample_event, sign_webhook
from ..webhooks import get_receiver
from .common import require_state

__all__ = ["trigger_command", "webhooks_group", "replay_command"]


def _receiver() -> Any:
    require_state(db=False)
    try:
        return get_receiver()
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None


def _find_payment(state: Any, ref: str) -> Any:
    """A payment by its id (digits) or its payment_gateway_transaction_id."""
    if state.models is None:
        raise click.ClickException("--payment needs the HAVN models: pass db= to HAVN(app, db=db).")
    payment_model = state.models.Payment
    session = state.db.session
    payment = session.get(payment_model, int(ref)) if ref.isdigit() and int(ref) <= MAX_ID else None
    if payment is None:
        payment = session.execute(
            sa.select(payment_model).where(payment_model.payment_gateway_transaction_id == ref)
        ).scalar_one_or_none()
    if payment is None:
        raise click.ClickException(f"no payment has the id or gateway transaction id {ref!r}; "
                                   "check the id, or leave --payment out to send an unmatched event.")
    return payment


#: Payment columns a triggered event may change (what ``--force`` lists before changing a live payment).
_EVENT_COLUMNS = ("delivery_state", "havn_transaction_id", "commissions", "total_commission", "sent_at",
                  "next_attempt_at", "last_error", "havn_details", "conversion_verdict", "havn_amount_usd")


def _shown(value: Any) -> str:
    """A column value, short: lists by their length, times as ISO 8601, long text cut."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, list):
        return f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _changes(state: Any, payment: Any, envelope: Dict[str, Any]) -> List[str]:
    """What the event would change on ``payment``: ``apply_event`` run on the row, read, rolled back."""
    before = {name: getattr(payment, name) for name in _EVENT_COLUMNS}
    before["commissions"] = list(before["commissions"] or [])
    apply_event(Event.from_envelope(envelope), payment, utcnow())
    changed = []
    for name in _EVENT_COLUMNS:
        after = getattr(payment, name)
        if name == "commissions":
            after = list(after or [])
            if after != before[name]:
                changed.append(f"commissions: {_shown(before[name])} replaced by {_shown(after)} invented ones")
        elif after != before[name]:
            changed.append(f"{name}: {_shown(before[name])} -> {_shown(after)}")
    state.db.session.rollback()  # a preview: nothing of it is kept
    return changed


@click.command("trigger")
@with_appcontext
@click.argument("event_type", type=click.Choice([COMMISSION_DISTRIBUTED, CONVERSION_FAILED]))
@click.option("--payment", "payment_ref", default=None,
              help="Local payment (id or gateway transaction id) the event is about; it must be a test-mode "
                   "payment (recorded with HAVN_TEST_MODE on) unless --force.")
@click.option("--url", default=None,
              help="POST over HTTP to this URL instead of in process to the app's own endpoint.")
@click.option("--test-mode", is_flag=True, default=False,
              help="Kept for compatibility: triggered events are always test_mode: true (unless --force).")
@click.option("--force", is_flag=True, default=False,
              help="Send a live event (test_mode: false) that changes a live payment; the changes are listed "
                   "first.")
def trigger_command(event_type: str, payment_ref: Optional[str], url: Optional[str], test_mode: bool,
                    force: bool) -> None:
    """Send a realistic, signed test-mode HAVN event to this app's webhook endpoint.

    Triggered events are marked test_mode: true, and the receiver applies a
    test-mode event only to payments recorded in test mode: a live payment is
    never changed by a made-up event. --payment naming a live payment is
    refused unless --force, which prints what will change and sends a live event.
    """
    state = require_state(db=False)
    secret = state.config.webhook_secret
    if not secret:
        raise click.ClickException("HAVN_WEBHOOK_SECRET is not set; set it (or HAVN_SANDBOX = True) to sign events.")
    payment = _find_payment(state, payment_ref) if payment_ref else None
    live = payment is not None and not payment.test_mode
    envelope = sample_event(event_type, payment=payment, test_mode=not (force and live))
    if payment is not None and live:
        changes = _changes(state, payment, envelope) or ["nothing (it already says what the event says)"]
        what = f"payment {payment.id} ({payment.payment_gateway_transaction_id}, delivery_state " \
               f"{payment.delivery_state}) is live data: it was recorded with HAVN_TEST_MODE off"
        if not force:
            raise click.ClickException(
                f"{what}, and triggered events are test-mode events, which never change it. This "
                f"{event_type} would change: " + "; ".join(changes) + ". Record a payment with HAVN_TEST_MODE "
                "on to try events on, or pass --force to send a live event that makes these changes.")
        click.echo(f"Warning: --force: {what}; this live {event_type} changes it: " + "; ".join(changes),
                   err=True)
    if state.db is not None:
        state.db.session.rollback()  # end our read before the endpoint opens its own transaction
    body, headers = sign_webhook(envelope, secret)
    if url:
        import requests

        try:
            with requests.Session() as session:
                response = session.post(url, data=body, headers=headers, timeout=30, allow_redirects=False)
                status, text = response.status_code, response.text
        except requests.RequestException as exc:
            raise click.ClickException(f"could not reach {url} ({type(exc).__name__}); is the app running there?")
        target = url
    else:
        target = _receiver().path
        with current_app.test_client() as client:
            answer = client.post(target, data=body, headers=headers)
            status, text = answer.status_code, answer.get_data(as_text=True)
    mode = "test-mode" if envelope["test_mode"] else "LIVE"
    click.echo(f"{event_type} {envelope['id']} ({mode}) -> POST {target}: {status}")
    click.echo(text.strip())
    if not 200 <= status < 300:
        raise SystemExit(1)


@click.group("webhooks", invoke_without_command=True)
@click.option("--status", type=click.Choice(EVENT_STATUSES), default=None, help="Only events with this status.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Newest events shown.")
@click.pass_context
@with_appcontext
def webhooks_group(ctx: click.Context, status: Optional[str], limit: int) -> None:
    """List stored HAVN events (newest first), or replay one: `flask havn webhooks replay ID`."""
    if ctx.invoked_subcommand is not None:
        return
    state = require_state(db=False)
    _receiver()
    model = state.models.WebhookEvent
    query = sa.select(model).order_by(model.received_at.desc(), model.id).limit(limit)
    if status:
        query = query.where(model.status == status)
    rows = state.db.session.execute(query).scalars().all()
    if not rows:
        click.echo("No HAVN webhook events stored" + (f" with status {status}." if status else "."))
        return
    for row in rows:
        received = row.received_at.strftime("%Y-%m-%d %H:%M:%S") if row.received_at else "-"
        click.echo(f"{row.id}  {row.type}  {row.status}  attempts={row.attempts}  received={received}")


@webhooks_group.command("replay")
@with_appcontext
@click.argument("event_id")
def replay_command(event_id: str) -> None:
    """Process a stored event again (its signals are sent again)."""
    receiver = _receiver()
    try:
        outcome = receiver.replay(event_id)
    except LookupError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    if outcome.status_code >= 500:
        last_line = (outcome.error or "").strip().splitlines()[-1:] or ["unknown error"]
        raise click.ClickException(f"{event_id} failed again: {last_line[0]} (full traceback: the event's "
                                   "last_error)")
    click.echo(f"{event_id}: {outcome.event_status}")

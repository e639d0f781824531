"""``flask havn trigger`` and ``flask havn webhooks [list|replay]``: the webhook receiver from a shell.

``trigger`` is ``stripe trigger`` for HAVN: it builds a realistic event, signs
it with the app's webhook secret and POSTs it to the app's own endpoint (in
process by default, or over HTTP to ``--url``). ``webhooks`` lists stored
events; ``webhooks replay ID`` processes a stored event again — its signals
are sent again, so receivers must tolerate that.
"""
from __future__ import annotations

from typing import Any, Optional

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from ..events import COMMISSION_DISTRIBUTED, CONVERSION_FAILED
from ..models import EVENT_STATUSES
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


@click.command("trigger")
@with_appcontext
@click.argument("event_type", type=click.Choice([COMMISSION_DISTRIBUTED, CONVERSION_FAILED]))
@click.option("--payment", "payment_ref", default=None,
              help="Local payment (id or gateway transaction id) the event is about.")
@click.option("--url", default=None,
              help="POST over HTTP to this URL instead of in process to the app's own endpoint.")
@click.option("--test-mode", is_flag=True, default=False, help="Mark the event test_mode: true.")
def trigger_command(event_type: str, payment_ref: Optional[str], url: Optional[str], test_mode: bool) -> None:
    """Send a realistic, signed HAVN event to this app's webhook endpoint."""
    state = require_state(db=False)
    secret = state.config.webhook_secret
    if not secret:
        raise click.ClickException("HAVN_WEBHOOK_SECRET is not set; set it (or HAVN_SANDBOX = True) to sign events.")
    payment = _find_payment(state, payment_ref) if payment_ref else None
    envelope = sample_event(event_type, payment=payment, test_mode=test_mode)
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
    click.echo(f"{event_type} {envelope['id']} -> POST {target}: {status}")
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

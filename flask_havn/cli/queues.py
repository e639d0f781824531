"""``flask havn`` commands for delivery through a task queue (``HAVN_DELIVERY`` ``"celery"`` or ``"rq"``).

    flask havn rq-worker [--burst] [--sweep-every S] [--simple]   an RQ worker for this app's queue
    flask havn sweep                                               enqueue the due payments that have no task

Celery's worker is Celery's own: ``celery -A yourapp.celery_app worker -Q havn``.
"""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from ..errors import HAVNConfigError
from ..outbox.schedule import QUEUED
from ..state import HAVNState
from .common import fail, require_state

__all__ = ["COMMANDS", "echo_queue"]


def echo_queue(state: HAVNState) -> None:
    """``flask havn status``'s last line with ``celery``/``rq`` delivery: how many tasks wait in the queue."""
    mode = state.config.delivery
    if mode not in QUEUED:
        return
    queue = state.queue
    if queue is None:
        click.echo(f"queue: {mode}, none bound to this app (call havn.init_celery(celery_app, app))")
        return
    try:
        waiting = queue.waiting()
    except Exception as exc:  # the broker's own errors vary by engine
        click.echo(f"queue: {queue.engine} {queue.name!r} unreachable ({type(exc).__name__}: {exc})")
        return
    click.echo(f"queue: {queue.engine} {queue.name!r}, {waiting} task(s) waiting to start")


@click.command("rq-worker")
@with_appcontext
@click.option("--burst", is_flag=True, help="Run the due jobs (after one sweep), then exit.")
@click.option("--sweep-every", default=60.0, show_default=True, type=click.FloatRange(0.0),
              help="Seconds between two sweeps enqueued by this worker (0: none; run them with `rq cron` instead).")
@click.option("--simple", is_flag=True, help="Run each job in this process instead of a forked work horse.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="RQ's logging level.")
def rq_worker_command(burst: bool, sweep_every: float, simple: bool, log_level: str) -> None:
    """Run an RQ worker, with RQ's scheduler, on this app's queue (HAVN_DELIVERY = "rq").

    Each job delivers one payment in this app's context; retries are
    scheduled jobs. Stop it with Ctrl-C (a warm shutdown finishes the job
    under way). Start as many as you like, on as many machines.
    """
    state = require_state()
    if state.config.delivery != "rq":
        raise click.ClickException(f'HAVN_DELIVERY is {state.config.delivery!r}: set HAVN_DELIVERY = "rq" (and '
                                   "HAVN_RQ_URL) to deliver through RQ")
    from ..queues.rq import run_worker

    run_worker(current_app._get_current_object(), burst=burst, sweep_every=sweep_every,  # type: ignore[attr-defined]
               simple=simple, logging_level=log_level.upper())


@click.command("sweep")
@with_appcontext
@click.option("--force", is_flag=True, help="Sweep even while tasks wait in the queue.")
def sweep_command(force: bool) -> None:
    """Enqueue a delivery task for every payment due longer than HAVN_QUEUE_SWEEP_GRACE (celery/rq delivery).

    What the periodic sweep does, once: after a broker outage, or to check
    the queue's set-up. It waits while tasks wait in the queue, unless
    --force. A payment that still has a task gets a second one, which ends
    at once.
    """
    try:
        count = require_state().outbox.sweep(force=force)
    except HAVNConfigError as exc:
        raise fail(exc) from None
    click.echo(f"Enqueued {count} due payment(s)")


#: The commands of this module, in the order ``flask havn --help`` lists them.
COMMANDS = (rq_worker_command, sweep_command)

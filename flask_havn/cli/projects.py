"""``flask havn`` commands for projects, members and payment delivery (thin wrappers over the services).

    flask havn init-db                              create the havn_* tables
    flask havn create-project NAME [--upline CODE]  create a project
    flask havn projects [--sync-state S]            list projects (--limit, --offset)
    flask havn sync-project ID --email --name       sync a project's owner → its referral code
    flask havn sync-members ID FILE.csv             sync a team (CSV with email,name columns)
    flask havn payments [--state S] [--project ID]  list payments, newest first (--limit, --offset)
    flask havn deliver [--once] [--concurrency N] [--retry-dead]
    flask havn status                               payments by delivery state, oldest pending
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional

import click
from flask.cli import with_appcontext

from .. import members_csv
from ..errors import HAVNError, HAVNValidationError
from ..models import DELIVERY_STATES, SYNC_STATES
from .common import ID, fail, require_state
from .queues import echo_queue

__all__ = ["COMMANDS"]


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create flask_havn's havn_* tables (only those) if they do not exist.

    For production, prefer migrations: with Flask-Migrate the havn_* tables are
    part of your db's metadata, so `flask db migrate` picks them up.
    """
    state = require_state()
    models = state.models
    tables = [models.Project.__table__, models.ProjectMember.__table__, models.Payment.__table__,
              models.WebhookEvent.__table__]
    state.db.metadata.create_all(bind=state.db.engine, tables=tables)
    click.echo("Created (if missing): " + ", ".join(t.name for t in tables))


@click.command("sync-project")
@with_appcontext
@click.argument("project_id", type=ID)
@click.option("--email", required=True, help="The project owner's email address.")
@click.option("--name", required=True, help="The project owner's name.")
def sync_project_command(project_id: int, email: str, name: str) -> None:
    """Sync project PROJECT_ID's owner to HAVN and print the project's referral code."""
    state = require_state()
    try:
        project = state.projects.sync_owner(project_id, email, name)
    except HAVNError as exc:
        raise fail(exc) from None
    click.echo(f"Project {project.id} ({project.name}) synced: referral code {project.referral_code}")


@click.command("sync-members")
@with_appcontext
@click.argument("project_id", type=ID)
@click.argument("csv_file", type=click.File("rb"))
def sync_members_command(project_id: int, csv_file: Any) -> None:
    """Sync the team in CSV_FILE as partners of project PROJECT_ID.

    CSV_FILE is UTF-8 CSV: a header line naming the columns email and name
    (other columns are ignored), or email,name on every line. Members go in
    batches of HAVN_BULK_MAX_SIZE. The good rows are synced even when some
    are not; each row that was not (a bad address, listed twice, refused by
    HAVN) is listed with its line, and the command then exits with status 1.
    """
    state = require_state()
    filename = click.format_filename(csv_file.name)
    try:
        rows = members_csv.parse(members_csv.decode(csv_file.read()))
    except HAVNValidationError as exc:
        raise click.ClickException(f"{filename} {exc.reason}") from None
    sendable = sum(1 for row in rows if row.error is None)
    batch_size = state.config.bulk_max_size
    result = None
    with click.progressbar(length=sendable, label=f"Syncing {sendable} members") as bar:
        def on_batch(number: int, total: int, batch: Any) -> None:
            bar.update(min(number * batch_size, sendable) - min((number - 1) * batch_size, sendable))

        try:
            result = members_csv.sync(state.projects, project_id, rows, on_batch=on_batch)
        except HAVNError as exc:
            _report_rows(rows)
            raise fail(exc) from None
    if result is not None:
        click.echo(f"{result.summary.success} synced, {result.summary.errors} failed "
                   f"(of {result.summary.total}); linked to {result.referral_code}")
    not_synced = _report_rows(rows)
    if not_synced:
        raise click.ClickException(f"{not_synced} of {len(rows)} rows of {filename} were not synced "
                                   "(listed above); fix them and run the command again with those rows")


def _report_rows(rows: List[members_csv.MemberRow]) -> int:
    """List each row that is not synced (with its line) on stderr; how many there are."""
    missed = [row for row in rows if row.result != members_csv.SYNCED]
    for row in missed:
        click.echo(f"  line {row.line}: {row.email or '(no email)'}: {row.error or row.result}", err=True)
    return len(missed)


@click.command("create-project")
@with_appcontext
@click.argument("name")
@click.option("--upline", "upline", metavar="CODE", default=None,
              help="The referral code of the project that referred this one (its upline).")
def create_project_command(name: str, upline: Optional[str]) -> None:
    """Create a project called NAME (then sync its owner with sync-project to get its referral code)."""
    state = require_state()
    try:
        project = state.projects.create(name, upline_referral_code=upline)
    except HAVNError as exc:
        raise fail(exc) from None
    referred = f", referred by {project.upline_referral_code}" if project.upline_referral_code else ""
    click.echo(f"Project {project.id} ({project.name}) created{referred}. Next: flask havn sync-project "
               f"{project.id} --email OWNER_EMAIL --name OWNER_NAME")


_PAGE_OPTIONS = (
    click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 500),
                 help="How many to show (at most 500, as the list routes)."),
    click.option("--offset", default=0, show_default=True, type=click.IntRange(0, 10 ** 9),
                 help="How many to skip (for the next page)."),
)


def _paged(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_PAGE_OPTIONS):
        command = option(command)
    return command


def _page_footer(shown: int, offset: int, total: int, noun: str) -> str:
    if not shown:
        return f"No {noun} here ({total} in all)." if total else f"No {noun} yet."
    return f"{offset + 1}–{offset + shown} of {total} {noun}"


@click.command("projects")
@with_appcontext
@click.option("--sync-state", type=click.Choice(SYNC_STATES), default=None,
              help="Only projects in this sync state.")
@_paged
def projects_command(sync_state: Optional[str], limit: int, offset: int) -> None:
    """List projects, oldest first: id, sync state, referral code, upline code and name."""
    rows, total = require_state().projects.list(sync_state=sync_state, limit=limit, offset=offset)
    for project in rows:
        click.echo(f"{project.id:>6}  {project.sync_state:<8} {project.referral_code or '-':<16} "
                   f"{project.upline_referral_code or '-':<16} {project.name}")
    click.echo(_page_footer(len(rows), offset, total, "projects"))


@click.command("payments")
@with_appcontext
@click.option("--state", "delivery_state", type=click.Choice(DELIVERY_STATES), default=None,
              help="Only payments in this delivery state.")
@click.option("--project", "project_id", type=ID, default=None, help="Only payments of this project id.")
@_paged
def payments_command(delivery_state: Optional[str], project_id: Optional[int], limit: int, offset: int) -> None:
    """List payments, newest first: id, project, amount, delivery state, attempts and HAVN's transaction id."""
    try:
        rows, total = require_state().payments.list(delivery_state=delivery_state, project=project_id,
                                                    limit=limit, offset=offset)
    except HAVNError as exc:
        raise fail(exc) from None
    for payment in rows:
        amount = f"{payment.amount} {payment.currency}"
        click.echo(f"{payment.id:>6}  project {payment.project_id:<6} {amount:>18}  {payment.delivery_state:<17} "
                   f"attempts {payment.attempts:<3} {payment.havn_transaction_id or '-'}")
    click.echo(_page_footer(len(rows), offset, total, "payments"))


@click.command("deliver")
@with_appcontext
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (default: keep running).")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Threads claiming and sending payments at the same time.")
@click.option("--retry-dead", is_flag=True, help="First put every dead payment back in line.")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(0.0),
              help="Seconds to sleep when nothing is due (without --once).")
def deliver_command(once: bool, concurrency: int, retry_dead: bool, interval: float) -> None:
    """Send recorded completed payments to HAVN (the outbox worker).

    Safe to run several at once, on several machines: each payment is claimed
    by one worker at a time.
    """
    outbox = require_state().outbox
    if retry_dead:
        click.echo(f"Requeued {outbox.requeue_dead()} dead payment(s)")
    if once:
        due = outbox.count_due()
        lock = threading.Lock()
        with click.progressbar(length=due, label=f"Delivering {due} payment(s)") as bar:
            def advance(payment: Any) -> None:
                with lock:
                    bar.update(1)

            counts = outbox.deliver_due(concurrency=concurrency, on_delivered=advance)
        click.echo(_summary(counts))
        return
    click.echo(f"Delivering due payments every {interval:g}s with {concurrency} thread(s); Ctrl-C to stop")

    def report(counts: Dict[str, int]) -> None:
        if any(counts.values()):
            click.echo(_summary(counts))

    try:
        outbox.run_worker(interval=interval, concurrency=concurrency, on_pass=report)
    except KeyboardInterrupt:
        click.echo("Stopped")


def _summary(counts: Dict[str, int]) -> str:
    parts = [f"{count} {state}" for state, count in counts.items() if count]
    return "Delivered: " + (", ".join(parts) if parts else "nothing was due")


@click.command("status")
@with_appcontext
def status_command() -> None:
    """Counts of completed payments by delivery state, and the oldest one not yet delivered."""
    state = require_state()
    report = state.outbox.status()
    width = max(len(name) for name in report["by_state"])
    for name, count in report["by_state"].items():
        click.echo(f"{name:<{width}}  {count}")
    click.echo(f"due now: {report['due']}; not completed yet: {report['not_completed']}")
    oldest: Optional[Dict[str, Any]] = report["oldest_pending"]
    if oldest is None:
        click.echo("oldest pending: none")
    else:
        click.echo(f"oldest pending: payment {oldest['id']}, recorded {oldest['created_at'].isoformat()}Z")
    echo_queue(state)


#: The commands of this module, in the order ``flask havn --help`` lists them.
COMMANDS = (init_db_command, create_project_command, projects_command, sync_project_command, sync_members_command,
            payments_command, deliver_command, status_command)

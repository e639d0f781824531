"""``flask havn`` commands for projects, members and payment delivery (thin wrappers over the services).

    flask havn init-db                              create the havn_* tables
    flask havn sync-project ID --email --name       sync a project's owner → its referral code
    flask havn sync-members ID FILE.csv             sync a team (CSV with email,name columns)
    flask havn deliver [--once] [--concurrency N] [--retry-dead]
    flask havn status                               payments by delivery state, oldest pending
"""
from __future__ import annotations

import csv
import io
import threading
from typing import Any, Dict, List, Optional, Tuple

import click
from flask.cli import with_appcontext

from ..errors import HAVNError, HAVNValidationError
from .common import ID, fail, require_state
from .queues import echo_queue

__all__ = ["COMMANDS", "read_members_csv"]


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


def read_members_csv(text: str) -> List[Dict[str, str]]:
    """Rows of a members CSV: a header naming ``email`` and ``name`` (any case); other columns ignored."""
    return [row for _line, row in _read_members(text)]


def _read_members(text: str) -> List[Tuple[int, Dict[str, str]]]:
    """:func:`read_members_csv` with each row's line in the file (blank lines skipped, still counted)."""
    reader = csv.DictReader(io.StringIO(text))
    fields = {(name or "").strip().lower(): name for name in (reader.fieldnames or [])}
    missing = [key for key in ("email", "name") if key not in fields]
    if missing:
        raise HAVNValidationError("csv", f"the header must name the columns email and name (missing: "
                                  f"{', '.join(missing)}); e.g. first line: email,name")
    rows = []
    for row in reader:
        email = (row.get(fields["email"]) or "").strip()
        name = (row.get(fields["name"]) or "").strip()
        if not email and not name:
            continue  # blank line
        rows.append((reader.line_num, {"email": email, "name": name}))
    if not rows:
        raise HAVNValidationError("csv", "has no member rows below the header")
    return rows


@click.command("sync-members")
@with_appcontext
@click.argument("project_id", type=ID)
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
def sync_members_command(project_id: int, csv_file: Any) -> None:
    """Sync the team in CSV_FILE (columns email,name) as partners of project PROJECT_ID.

    Members go in batches of HAVN_BULK_MAX_SIZE; members HAVN refused are
    listed, and the command then exits with status 1.
    """
    state = require_state()
    try:
        numbered = _read_members(csv_file.read())
    except HAVNValidationError as exc:
        raise fail(exc) from None
    lines = [line for line, _row in numbered]
    users = [row for _line, row in numbered]
    batch_size = state.config.bulk_max_size
    with click.progressbar(length=len(users), label=f"Syncing {len(users)} members") as bar:
        def on_batch(number: int, total: int, result: Any) -> None:
            done = min(number * batch_size, len(users)) - min((number - 1) * batch_size, len(users))
            bar.update(done)

        try:
            result = state.projects.sync_members(project_id, users, on_batch=on_batch)
        except HAVNError as exc:
            raise fail(exc, lines) from None
    click.echo(f"{result.summary.success} synced, {result.summary.errors} failed "
               f"(of {result.summary.total}); linked to {result.referral_code}")
    for error in result.errors:
        index = error.get("index")
        line = lines[index] if isinstance(index, int) and 0 <= index < len(lines) else "?"
        click.echo(f"  line {line}: {error.get('email')}: {error.get('error')}", err=True)
    if result.errors:
        raise SystemExit(1)


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
COMMANDS = (init_db_command, sync_project_command, sync_members_command, deliver_command, status_command)

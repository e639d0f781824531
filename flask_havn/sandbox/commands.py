"""``flask havn sandbox`` (serve a standalone sandbox) and ``flask havn sandbox reset`` (start over).

Registered on ``flask havn`` by :mod:`flask_havn.cli`. The app is read only
through ``current_app.extensions["havn"]`` (its credentials, its embedded
sandbox), so nothing above the sandbox is imported; the server and the store
are imported when a command runs, not when ``flask havn`` is registered.

A standalone sandbox verifies requests with its key and secret and signs the
events its unauthenticated control routes are handed: run with the app's own
credentials it would be a signing oracle for them. So it makes up fresh
credentials each run and prints them, and uses the app's only when told to
(``--use-app-credentials``, with a warning).
"""
from __future__ import annotations

import os
import secrets
from typing import Any, Dict, Optional, Tuple

import click
from click.core import ParameterSource
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from .settings import environ_config

__all__ = ["sandbox_cli", "generated_credentials"]

_APP_CREDENTIALS_WARNING = (
    "warning: this sandbox accepts and signs with the app's own HAVN_API_KEY and HAVN_WEBHOOK_SECRET. Its "
    "/_sandbox/ routes have no authentication: whoever reaches them can make it sign events your app trusts. "
    "Never do this with production credentials; drop --use-app-credentials to get throwaway ones."
)


def generated_credentials() -> Dict[str, str]:
    """A fresh, random ``HAVN_API_KEY`` and ``HAVN_WEBHOOK_SECRET`` for one sandbox run."""
    return {"HAVN_API_KEY": "sandbox-key-" + secrets.token_urlsafe(18),
            "HAVN_WEBHOOK_SECRET": "sandbox-secret-" + secrets.token_urlsafe(24)}


def _app_credentials() -> Dict[str, str]:
    """The app's configured key and secret (``--use-app-credentials``), or a usage error saying why not."""
    state = current_app.extensions.get("havn")
    config = getattr(state, "config", None)
    if config is None or not config.api_key or not config.webhook_secret:
        raise click.UsageError("--use-app-credentials needs an app with the HAVN extension and its "
                               "HAVN_API_KEY / HAVN_WEBHOOK_SECRET set; drop the option to use throwaway ones")
    return {"HAVN_API_KEY": config.api_key, "HAVN_WEBHOOK_SECRET": config.webhook_secret}


_SERVE_OPTIONS = ("host", "port", "database", "webhook_url", "seed", "public_url", "allowed_host",
                  "use_app_credentials")


@click.group("sandbox", cls=AppGroup, invoke_without_command=True, subcommand_metavar="[reset]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (keep it on loopback).")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option("--database", default=None, help="SQLAlchemy URI for the sandbox state (default: in memory).")
@click.option("--webhook-url", default=None, help="Where the sandbox POSTs its signed events.")
@click.option("--seed", default=None, type=int, help="Seed for deterministic ids.")
@click.option("--public-url", default=None,
              help="The URL the sandbox is reached at, for its links (default: http://127.0.0.1:PORT).")
@click.option("--allowed-host", multiple=True, metavar="NAME",
              help="A Host name to answer besides localhost/127.0.0.1/[::1] (repeatable).")
@click.option("--use-app-credentials", is_flag=True,
              help="Accept and sign with the app's own HAVN_API_KEY/HAVN_WEBHOOK_SECRET (default: throwaway ones).")
@click.pass_context
@with_appcontext
def sandbox_cli(ctx: click.Context, host: str, port: int, database: Optional[str], webhook_url: Optional[str],
                seed: Optional[int], public_url: Optional[str], allowed_host: Tuple[str, ...],
                use_app_credentials: bool) -> None:
    """Run a standalone HAVN sandbox server, with throwaway credentials it prints.

    `flask havn sandbox reset` empties the app's embedded sandbox instead.
    """
    if ctx.invoked_subcommand is not None:
        given = [name for name in _SERVE_OPTIONS if ctx.get_parameter_source(name) != ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} is an option of the server; "
                                   f"write `flask havn sandbox {ctx.invoked_subcommand} …` without it")
        return
    from .server import run, standalone_config

    config: Dict[str, Any] = environ_config(os.environ)
    config.update(standalone_config(database=database, webhook_url=webhook_url, seed=seed, public_url=public_url,
                                    allowed_hosts=allowed_host))
    if use_app_credentials:
        config.update(_app_credentials())
        click.echo(_APP_CREDENTIALS_WARNING, err=True)
    else:
        config.update(generated_credentials())
    run(host=host, port=port, config=config, generated_credentials=not use_app_credentials)


@sandbox_cli.command("reset")
@click.option("--database", default=None, metavar="URI",
              help="Empty the standalone sandbox stored at this SQLAlchemy URI instead of the app's embedded one.")
def reset_command(database: Optional[str]) -> None:
    """Empty the sandbox's stored state: users, associates, transactions, rates."""
    from .state import get_state
    from .store import Store

    if database:
        store = Store(database)
        try:
            store.rebuild()
        finally:
            store.close()
        click.echo("The sandbox stored at --database is empty now.")
        return
    state = current_app.extensions.get("havn")
    sandbox_app = getattr(state, "sandbox_app", None)
    if sandbox_app is None:
        raise click.UsageError("this app does not embed a HAVN sandbox (HAVN_SANDBOX is off), so there is "
                               "nothing to reset here; for a standalone one pass --database URI, or POST {} "
                               "to its /_sandbox/reset")
    sandbox = get_state(sandbox_app)
    sandbox.reset()
    click.echo(f"The embedded HAVN sandbox is empty now ({sandbox.settings.shown_database_uri}).")

"""``flask havn sandbox``: a standalone HAVN sandbox server for this app."""
from __future__ import annotations

from typing import Any, Dict, Optional

import click
from flask import current_app
from flask.cli import with_appcontext

__all__ = ["sandbox_command"]


def _app_credentials() -> Dict[str, Any]:
    """The app's HAVN credentials when the extension is set up, else nothing (sandbox defaults)."""
    state = current_app.extensions.get("havn")
    if state is None or state.config.sandbox:
        return {}
    return {"HAVN_API_KEY": state.config.api_key, "HAVN_WEBHOOK_SECRET": state.config.webhook_secret}


@click.command("sandbox")
@with_appcontext
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (keep it on loopback).")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option("--database", default=None, help="SQLAlchemy URI for the sandbox state (default: in memory).")
@click.option("--webhook-url", default=None, help="Where the sandbox POSTs its signed events.")
@click.option("--seed", default=None, type=int, help="Seed for deterministic ids.")
def sandbox_command(host: str, port: int, database: Optional[str], webhook_url: Optional[str],
                    seed: Optional[int]) -> None:
    """Run a standalone HAVN sandbox server (accepts this app's HAVN credentials if set)."""
    from ..sandbox.server import run

    config: Dict[str, Any] = _app_credentials()
    if database:
        config["HAVN_SANDBOX_DATABASE_URI"] = database
    if webhook_url:
        config["HAVN_SANDBOX_WEBHOOK_URL"] = webhook_url
    if seed is not None:
        config["HAVN_SANDBOX_SEED"] = seed
    run(host=host, port=port, config=config)

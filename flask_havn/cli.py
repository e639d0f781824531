"""``flask havn …`` commands; thin wrappers over the library's functions."""
from __future__ import annotations

from flask.cli import AppGroup

from .sandbox.commands import sandbox_cli

__all__ = ["havn_cli"]

havn_cli = AppGroup("havn", help="HAVN referral and commission commands (flask_havn).")
havn_cli.add_command(sandbox_cli)  # `flask havn sandbox [reset]`, defined with the sandbox

from . import cli_webhooks  # noqa: F401,E402
from . import cli_projects  # noqa: F401,E402

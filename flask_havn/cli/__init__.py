"""``flask havn …``: the command group the extension adds to the app's CLI.

Each command is a thin wrapper over the public services
(``get_state().projects``, ``.payments``, ``.outbox``) or the webhook receiver.
"""
from __future__ import annotations

from flask.cli import AppGroup

from ..sandbox.commands import sandbox_cli
from .projects import COMMANDS as _PROJECT_COMMANDS
from .queues import COMMANDS as _QUEUE_COMMANDS
from .webhooks import trigger_command, webhooks_group

__all__ = ["havn_cli"]

havn_cli = AppGroup("havn", help="HAVN referral and commission commands (flask_havn).")
for _command in (*_PROJECT_COMMANDS, *_QUEUE_COMMANDS, sandbox_cli, trigger_command, webhooks_group):
    havn_cli.add_command(_command)

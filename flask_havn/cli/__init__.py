"""``flask havn …``: the command group the extension adds to the app's CLI.

Each command is a thin wrapper over the public services
(``get_state().projects``, ``.payments``, ``.outbox``) or the webhook receiver.
The commands' modules are imported when the group is first asked for its
commands (``flask havn …`` runs, or its help is shown), not when ``init_app``
registers the group: a web process never loads them.
"""
from __future__ import annotations

from typing import Any, Dict

import click
from flask.cli import AppGroup

__all__ = ["havn_cli"]


class _LazyGroup(AppGroup):
    """An :class:`~flask.cli.AppGroup` whose commands are added by ``load`` on the first use of ``commands``."""

    def __init__(self, name: str, load: Any, **attrs: Any) -> None:
        self._load = load
        self._loaded = False
        super().__init__(name, **attrs)

    @property  # type: ignore[override]
    def commands(self) -> Dict[str, click.Command]:
        if not self._loaded:
            self._loaded = True  # first: load() adds commands, which reads this property again
            self._load(self)
        return self._commands

    @commands.setter
    def commands(self, value: Dict[str, click.Command]) -> None:
        self._commands = value


def _add_commands(group: click.Group) -> None:
    from ..sandbox.commands import sandbox_cli
    from .projects import COMMANDS as PROJECT_COMMANDS
    from .queues import COMMANDS as QUEUE_COMMANDS
    from .webhooks import trigger_command, webhooks_group

    for command in (*PROJECT_COMMANDS, *QUEUE_COMMANDS, sandbox_cli, trigger_command, webhooks_group):
        group.add_command(command)


havn_cli = _LazyGroup("havn", _add_commands, help="HAVN referral and commission commands (flask_havn).")

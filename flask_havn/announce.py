"""Sending a signal about something already committed, without letting a receiver undo the flow.

A receiver of an after-commit signal (``transaction_sent``, ``project_synced``…)
cannot roll anything back: what it announces is in the database. So each
receiver runs on its own; one that raises is logged with what was announced
and the exception, the others still run, and the flow that sent the signal
(a delivery pass, a worker loop, a sync) goes on. Signals sent *inside* a
transaction (``conversion_failed``, the webhook signals) do not use this:
there a raising receiver is meant to undo the transaction.
"""
from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal
from flask import current_app

__all__ = ["announce"]

log = logging.getLogger("flask_havn.signals")


def announce(signal: NamedSignal, about: str, **kwargs: Any) -> int:
    """Send ``signal`` from the current app to each receiver in turn; how many receivers raised.

    ``about`` names what is announced in the log line of a receiver that
    raised (``"payment 12"``).
    """
    sender = current_app._get_current_object()  # type: ignore[attr-defined]
    failures = 0
    for receiver in list(signal.receivers_for(sender)):
        try:
            receiver(sender, **kwargs)
        except Exception:
            failures += 1
            log.exception("a receiver of %s (%r) raised for %s; what it announces is already recorded, "
                          "so flask_havn goes on", signal.name, receiver, about)
    return failures

"""What a backend call hands back to the HTTP layer: the answer and the events to deliver.

Defined here (re-exported by ``backend``) so the rule modules can build them
without importing the backend.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

__all__ = ["Event", "Outcome"]


@dataclass
class Event:
    """An event the HTTP layer must hand to the webhook dispatcher (after the call returned)."""

    #: ``"commission.distributed"`` or ``"transaction.conversion_failed"``.
    type: str
    #: Exactly the ``data`` object of webhook-events.md.
    data: dict
    test_mode: bool = False


@dataclass
class Outcome:
    """What an endpoint answers: status, JSON body, and events to dispatch."""

    status: int
    #: The JSON object answered; ``None``: the status alone, with an empty body (a valid voucher).
    body: Optional[dict]
    events: List[Event] = field(default_factory=list)

"""What one sandbox app owns (:class:`SandboxState`) and how its views find it (:func:`get_state`).

A leaf of the sandbox package: the app factory builds a state and the views
and control routes read it, so both import this module and neither imports
the other.
"""
from __future__ import annotations

import weakref
from typing import Any, Optional

from .backend import SandboxBackend
from .events import SeededEventIds, WebhookDispatcher
from .faults import FaultInjector
from .ratelimit import RateLimiter
from .settings import SandboxSettings

__all__ = ["SandboxState", "get_state", "EXTENSION_KEY"]

#: Where the state lives: ``app.extensions[EXTENSION_KEY]``.
EXTENSION_KEY = "havn_sandbox"


def _close_parts(backend: SandboxBackend, dispatcher: WebhookDispatcher, faults: FaultInjector) -> None:
    faults.close()
    dispatcher.close()
    backend.close()


class SandboxState:
    """Everything one sandbox app owns; ``reset()`` restores the configured start."""

    def __init__(
        self,
        settings: SandboxSettings,
        backend: SandboxBackend,
        dispatcher: WebhookDispatcher,
        limiter: RateLimiter,
        faults: FaultInjector,
        event_ids: Optional[SeededEventIds] = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.dispatcher = dispatcher
        self.limiter = limiter
        self.faults = faults
        self._event_ids = event_ids
        # Closes the parts at interpreter exit, or when the state is collected, or on close().
        self._finalizer = weakref.finalize(self, _close_parts, backend, dispatcher, faults)

    def __repr__(self) -> str:
        return f"<SandboxState database={self.settings.database_uri!r} webhook_url={self.dispatcher.url!r}>"

    def reset(self) -> None:
        """Drop all data, events, counters and faults; back to the configured settings."""
        self.backend.reset()
        self.dispatcher.reset()
        self.dispatcher.url = self.settings.webhook_url
        if self._event_ids is not None:
            self._event_ids.reset()
        self.limiter.reset()
        if self.settings.faults:
            self.faults.configure(self.settings.faults)
        else:
            self.faults.clear()

    def close(self) -> None:
        """Stop the delivery thread, wake stalled requests and dispose the database engine."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return not self._finalizer.alive


def get_state(app: Any) -> SandboxState:
    """The :class:`SandboxState` of a sandbox app (clear error for any other app)."""
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, SandboxState):
        raise RuntimeError("this Flask app is not a HAVN sandbox; build it with flask_havn.sandbox.create_app()")
    return state

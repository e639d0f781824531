"""What one sandbox app owns (:class:`SandboxState`) and how its views find it (:func:`get_state`).

A leaf of the sandbox package: the app factory builds a state and the views
and control routes read it, so both import this module and neither imports
the other.
"""
from __future__ import annotations

import weakref
from typing import Any, Optional
from urllib.parse import urlsplit

from ..config import SANDBOX_BASE_URL
from ..errors import HAVNError
from .backend import SandboxBackend
from .events import SeededEventIds, WebhookDispatcher
from .faults import FaultInjector
from .ratelimit import RateLimiter
from .settings import SandboxSettings, hide_password

__all__ = ["SandboxState", "get_state", "EXTENSION_KEY"]

#: Where the state lives: ``app.extensions[EXTENSION_KEY]``.
EXTENSION_KEY = "havn_sandbox"
_IN_PROCESS_HOST = urlsplit(SANDBOX_BASE_URL).hostname


def _close_parts(backend: SandboxBackend, dispatcher: WebhookDispatcher, faults: FaultInjector,
                 drain_timeout: float) -> None:
    faults.close()
    dispatcher.close(drain_timeout)  # queued events go out first (bounded), or are counted in a warning
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
        self._public_url = settings.public_url or SANDBOX_BASE_URL
        #: The public referral link's slug and target (``PUT /_sandbox/public-link`` changes them).
        self.public_redirect_slug = settings.public_redirect_slug
        self.public_auth_redirect_url = settings.public_auth_redirect_url
        # Closes the parts at interpreter exit, or when the state is collected, or on close(); at exit the
        # delivery thread still runs, so queued events are delivered before the process ends.
        self._finalizer = weakref.finalize(self, _close_parts, backend, dispatcher, faults, settings.drain_timeout)

    def __repr__(self) -> str:
        url = hide_password(self.dispatcher.url) if self.dispatcher.url else None
        return f"<SandboxState database={self.settings.shown_database_uri!r} webhook_url={url!r}>"

    @property
    def public_url(self) -> str:
        """Where the sandbox is reached: ``HAVN_SANDBOX_PUBLIC_URL``, else the server's own URL once it
        serves over HTTP (:meth:`serve_at`), else the in-process ``http://havn-sandbox.invalid``.

        The sandbox's own links (the login ``redirect_url``) start with it, never with the request's ``Host``.
        """
        return self._public_url

    def serve_at(self, url: str) -> None:
        """Tell the state the URL its HTTP server listens on (used when no public URL is configured)."""
        if self.settings.public_url is None:
            self._public_url = url.rstrip("/")

    def allows_host(self, name: str) -> bool:
        """Whether a request for host ``name`` (not a loopback one) is answered: the public URL's host,
        one of ``HAVN_SANDBOX_ALLOWED_HOSTS``, or the in-process name (``.invalid`` never resolves in
        DNS, so no web page can rebind it; an embedded sandbox keeps working whatever its public URL)."""
        allowed = (urlsplit(self._public_url).hostname, _IN_PROCESS_HOST, *self.settings.allowed_hosts)
        return name in allowed

    def reset(self) -> None:
        """Drop all data, events, counters and faults; back to the configured settings."""
        self.backend.reset()
        self.dispatcher.reset()
        self.dispatcher.url = self.settings.webhook_url
        self.public_redirect_slug = self.settings.public_redirect_slug
        self.public_auth_redirect_url = self.settings.public_auth_redirect_url
        if self._event_ids is not None:
            self._event_ids.reset()
        self.limiter.reset()
        if self.settings.faults:
            self.faults.configure(self.settings.faults)
        else:
            self.faults.clear()

    def wait_for_events(self, timeout: float = 5.0) -> None:
        """Deliver the queued events now and wait until each is delivered or given up on (tests: no sleeps).

        Retries are attempted at once rather than on their schedule. Raises
        :class:`HAVNError` if events are still pending after ``timeout`` seconds.
        """
        left = self.dispatcher.flush(timeout)
        if left:
            raise HAVNError(f"{left} HAVN sandbox event(s) were still being delivered after {timeout:g} s; check "
                            "that the webhook URL answers 2xx quickly (GET /_sandbox/deliveries shows each "
                            "attempt), or wait longer")

    def close(self) -> None:
        """Deliver queued events (up to ``drain_timeout``), stop the delivery thread, wake stalled requests
        and dispose the database engine."""
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

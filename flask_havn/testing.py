"""pytest plugin and test helpers for apps that use flask_havn (entry point ``havn``).

Installing flask_havn makes these fixtures available in every test suite:

``havn_sandbox_server`` (session scope)
    One HAVN sandbox running over real HTTP on an ephemeral loopback port
    (a :class:`flask_havn.sandbox.server.SandboxServer`), started on first use
    and stopped at the end of the session. It uses a fixed seed (deterministic
    ids) and a webhook retry schedule compressed 1000×. Its ``url`` is the
    ``HAVN_BASE_URL`` to give your app; the credentials are
    ``flask_havn.config.SANDBOX_API_KEY`` / ``SANDBOX_WEBHOOK_SECRET``.
    Override ``havn_sandbox_config`` (session scope) to change its settings.

``havn_sandbox`` (function scope)
    The same server, reset before the test (no users, transactions, events,
    faults or rate-limit counts). After the test, any exception raised inside
    the sandbox while serving it fails the test. Use ``havn_sandbox.url``,
    ``havn_sandbox.state`` (backend, dispatcher, faults…) and the
    ``/_sandbox/…`` control routes; ``havn_sandbox.wait_for_events(timeout=5)``
    delivers the events it queued now and waits for them (no sleeps)::

        def test_checkout(havn_sandbox):
            requests.post(havn_sandbox.url + "/_sandbox/seed", json={...})
            ...
            havn_sandbox.wait_for_events()

``wait_for_events(app_or_server, timeout=5)``
    The same for a sandbox your app embeds (``HAVN_SANDBOX = True``): pass the
    app. Raises :class:`flask_havn.errors.HAVNError` if events are still
    being delivered after ``timeout`` seconds.

For webhooks (imported lazily from :mod:`flask_havn.webhook_testing`):

``sign_webhook(payload, secret, *, msg_id=None, timestamp=None)``
    ``(body_bytes, headers)`` of a Standard-Webhooks-signed event, ready for
    ``client.post(url, data=body, headers=headers)``.
``record_signals(*signals)``
    A context manager yielding the list of flask_havn signals sent inside it
    (``RecordedSignal(name, sender, kwargs)``), like Flask-Mail's ``record_messages()``.

Nothing is started or imported beyond pytest until a fixture is used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from .sandbox.server import SandboxServer

__all__ = [
    "havn_sandbox_config",
    "havn_sandbox_server",
    "havn_sandbox",
    "SANDBOX_TEST_CONFIG",
    "sign_webhook",
    "record_signals",
    "RecordedSignal",
    "sample_event",
    "wait_for_events",
]
_WEBHOOK_HELPERS = ("sign_webhook", "record_signals", "RecordedSignal", "sample_event")


def __getattr__(name: str) -> Any:
    # The webhook helpers live in flask_havn.webhook_testing; imported on first use so
    # that loading this plugin into every pytest run stays cheap.
    if name in _WEBHOOK_HELPERS:
        from . import webhook_testing

        return getattr(webhook_testing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

#: Settings of the plugin's sandbox: a fixed seed and a retry schedule compressed 1000×.
SANDBOX_TEST_CONFIG: Dict[str, Any] = {
    "HAVN_SANDBOX_SEED": 20261127,
    "HAVN_SANDBOX_DELIVERY_SCHEDULE_FACTOR": 0.001,
}


def wait_for_events(target: Any, timeout: float = 5.0) -> None:
    """Deliver a sandbox's queued events now (retries too) and wait until each is delivered or given up on.

    ``target`` is a :class:`~flask_havn.sandbox.server.SandboxServer` (``havn_sandbox``),
    a sandbox app, or a host app that embeds one (``HAVN_SANDBOX = True``).
    """
    waiter = getattr(target, "wait_for_events", None)  # a SandboxServer or a SandboxState
    if waiter is not None:
        waiter(timeout)
        return
    from .errors import HAVNConfigError
    from .sandbox.state import EXTENSION_KEY, get_state

    extensions = getattr(target, "extensions", None)
    if isinstance(extensions, dict) and EXTENSION_KEY not in extensions:
        target = getattr(extensions.get("havn"), "sandbox_app", None)
        if target is None:
            raise HAVNConfigError("this app embeds no HAVN sandbox (HAVN_SANDBOX is off): pass the "
                                  "havn_sandbox server your app talks to instead")
    get_state(target).wait_for_events(timeout)


@pytest.fixture(scope="session")
def havn_sandbox_config() -> Dict[str, Any]:
    """Config of the session's sandbox; override this fixture to change it."""
    return dict(SANDBOX_TEST_CONFIG)


@pytest.fixture(scope="session")
def havn_sandbox_server(havn_sandbox_config: Dict[str, Any]) -> Iterator["SandboxServer"]:
    """One sandbox over real HTTP for the whole session (stopped at the end)."""
    from .sandbox.server import SandboxServer

    server = SandboxServer(config=havn_sandbox_config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def havn_sandbox(havn_sandbox_server: "SandboxServer") -> Iterator["SandboxServer"]:
    """The session's sandbox, reset before this test; crashes inside it fail the test."""
    havn_sandbox_server.raise_errors()
    havn_sandbox_server.reset()
    yield havn_sandbox_server
    havn_sandbox_server.raise_errors()

"""The sandbox as a standalone Flask app: ``create_app(config) -> Flask``.

Wires the pieces together and keeps them in ``app.extensions["havn_sandbox"]``
as a :class:`SandboxState`: the backend (HAVN's state and rules), the webhook
dispatcher, the rate limiter and the fault injector wrapped around
``app.wsgi_app``. Every error answer is JSON, never HTML.
"""
from __future__ import annotations

import random
import string
import threading
import weakref
from typing import Any, Callable, Mapping, Optional

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import HAVNConfigError
from .backend import SandboxBackend
from .events import WebhookDispatcher, new_event_id
from .faults import FaultInjector, normalise_spec
from .ratelimit import RateLimiter
from .settings import SandboxSettings

__all__ = ["create_app", "get_state", "SandboxState", "EXTENSION_KEY"]

#: Where the state lives: ``app.extensions[EXTENSION_KEY]``.
EXTENSION_KEY = "havn_sandbox"
#: Largest request body the sandbox reads (HAVN's payloads are a few KiB).
MAX_BODY_BYTES = 1024 * 1024

_ID_ALPHABET = string.ascii_letters + string.digits + "-_"


class SeededEventIds:
    """Event ids drawn from ``random.Random(seed)``: the same seed gives the same ids."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def __call__(self) -> str:
        with self._lock:
            return "evt_" + "".join(self._random.choice(_ID_ALPHABET) for _ in range(24))

    def reset(self) -> None:
        """Restart the sequence from the seed."""
        with self._lock:
            self._random = random.Random(self.seed)


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


def _error_response(exc: HTTPException) -> Any:
    """Every HTTP error as HAVN-style JSON (``{"error", "message"}``), headers kept."""
    code = exc.code or 500
    names = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge", 500: "InternalServerError"}
    messages = {
        404: f"No sandbox route for {request.method} {request.path}; HAVN's API lives under "
             "/api/v1/webhook/ and the sandbox controls under /_sandbox/",
        405: f"{request.method} is not allowed on {request.path}; see the Allow header for the methods it takes",
        413: f"The request body is larger than {MAX_BODY_BYTES} bytes; send a smaller payload",
        500: "The HAVN sandbox crashed while handling this request; see the sandbox log for the traceback",
    }
    body = {
        "error": names.get(code, type(exc).__name__),
        "message": messages.get(code, exc.description or "HTTP error"),
    }
    response = jsonify(body)
    response.status_code = code
    for key, value in exc.get_headers():
        if key.lower() != "content-type":
            response.headers[key] = value
    return response


def create_app(config: Optional[Mapping[str, Any]] = None) -> Flask:
    """Build a standalone sandbox app from ``HAVN_*`` keys (see :class:`SandboxSettings`)."""
    from .control import control
    from .views import api, frontend, request_id_header

    settings = SandboxSettings.from_mapping(config or {})
    try:
        normalise_spec(settings.faults)
    except ValueError as exc:
        raise HAVNConfigError(f"HAVN_SANDBOX_FAULTS is invalid ({exc}); fix it in the sandbox config") from None

    app = Flask("flask_havn.sandbox")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]

    backend = SandboxBackend(settings)
    event_ids = SeededEventIds(settings.seed) if settings.seed is not None else None
    id_factory: Callable[[], str] = event_ids if event_ids is not None else new_event_id
    dispatcher = WebhookDispatcher(
        secret=settings.webhook_secret,
        url=settings.webhook_url,
        schedule_factor=settings.delivery_schedule_factor,
        id_factory=id_factory,
    )
    limiter = RateLimiter(settings.rate_limits)
    faults = FaultInjector(app.wsgi_app, settings.faults)
    app.wsgi_app = faults  # type: ignore[method-assign]
    app.extensions[EXTENSION_KEY] = SandboxState(settings, backend, dispatcher, limiter, faults, event_ids)

    app.register_blueprint(api)
    app.register_blueprint(frontend)
    app.register_blueprint(control)
    app.after_request(request_id_header)
    app.register_error_handler(HTTPException, _error_response)
    return app


def get_state(app: Flask) -> SandboxState:
    """The :class:`SandboxState` of a sandbox app (clear error for any other app)."""
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, SandboxState):
        raise RuntimeError("this Flask app is not a HAVN sandbox; build it with flask_havn.sandbox.create_app()")
    return state

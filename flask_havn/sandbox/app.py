"""The sandbox as a standalone Flask app: ``create_app(config) -> Flask``.

Wires the pieces together and keeps them in ``app.extensions["havn_sandbox"]``
as a :class:`SandboxState`: the backend (HAVN's state and rules), the webhook
dispatcher, the rate limiter and the fault injector wrapped around
``app.wsgi_app``. Every error answer is JSON, never HTML.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import HAVNConfigError
from .backend import SandboxBackend
from .control import control
from .events import SeededEventIds, WebhookDispatcher, new_event_id
from .faults import FaultInjector, normalise_spec
from .hosts import HostGuard
from .public import public
from .ratelimit import RateLimiter
from .settings import SandboxSettings
from .state import EXTENSION_KEY, SandboxState, get_state
from .views import api, frontend, request_id_header

__all__ = ["create_app", "get_state", "SandboxState", "EXTENSION_KEY"]

#: Largest request body the sandbox reads (HAVN's payloads are a few KiB).
MAX_BODY_BYTES = 1024 * 1024
_HOST_HINT = ("to serve another name, list it in HAVN_SANDBOX_ALLOWED_HOSTS (--allowed-host) or set "
              "HAVN_SANDBOX_PUBLIC_URL (--public-url) to the URL you reach the sandbox at")


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
    state = SandboxState(settings, backend, dispatcher, limiter, faults, event_ids)
    app.extensions[EXTENSION_KEY] = state
    app.wsgi_app = HostGuard(faults, state.allows_host, hint=_HOST_HINT)  # type: ignore[method-assign]

    app.register_blueprint(api)
    app.register_blueprint(frontend)
    app.register_blueprint(control)
    app.register_blueprint(public)
    app.after_request(request_id_header)
    app.register_error_handler(HTTPException, _error_response)
    return app


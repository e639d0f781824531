"""HAVN's five API endpoints and the SSO "frontend" page: parse, check, call the backend, answer.

Each API call runs the same gate, in HAVN's order: rate limit (429), then
``X-API-Key`` (401 "Invalid API key"), then ``X-Signature`` over the raw body
re-serialised canonically (401 "Invalid signature"; a GET signs ``{}``), then
the body must be a JSON object (400). The backend's ``SandboxError`` becomes
its status and body; events are handed to the dispatcher only after the
backend returned. Every API answer carries ``X-RateLimit-Limit/Remaining/Reset``.
"""
from __future__ import annotations

import hmac
import logging
import uuid
from typing import Any, Callable, Dict, Optional

from flask import Blueprint, Response, current_app, g, jsonify, request

from ..errors import HAVNValidationError
from ..rules import load_json
from ..signing import verify_api_signature
from .state import SandboxState, get_state
from .backend import Outcome
from .errors import SandboxError, bad_request

__all__ = ["api", "frontend", "request_id_header"]

log = logging.getLogger("flask_havn.sandbox")

#: HAVN's API routes (a "webhook" in HAVN's words is a call from the SaaS to HAVN).
api = Blueprint("havn_sandbox_api", __name__, url_prefix="/api/v1/webhook")
#: The page a login ``redirect_url`` points at: ``GET /login?token=…``.
frontend = Blueprint("havn_sandbox_frontend", __name__)

_MAX_IDEMPOTENCY_KEY = 255


def request_id_header(response: Response) -> Response:
    """Give every answer a fresh ``X-Request-Id`` (HAVN-style request correlation)."""
    response.headers.setdefault("X-Request-Id", "req_" + uuid.uuid4().hex)
    return response


@api.after_request
def _rate_limit_headers(response: Response) -> Response:
    decision = g.get("_havn_sandbox_rate")
    if decision is not None:
        for key, value in decision.headers().items():
            response.headers[key] = value
    return response


def _answer(status: int, body: Optional[Dict[str, Any]]) -> Response:
    """``body`` as JSON; ``None``: no body and no ``Content-Type`` (HAVN answers some calls by status alone)."""
    if body is None:
        response = Response(b"", status=status)
        del response.headers["Content-Type"]
        return response
    response = jsonify(body)
    response.status_code = status
    return response


def _reject(error: SandboxError) -> Response:
    log.info("sandbox %s %s -> %d %s: %s", request.method, request.path, error.status, error.error, error.message)
    return _answer(error.status, error.body())


def _api_key_ok(state: SandboxState) -> bool:
    offered = request.headers.get("X-API-Key", "")
    expected = state.settings.api_key
    return hmac.compare_digest(
        offered.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def _signature_ok(state: SandboxState, body: bytes) -> bool:
    signature = request.headers.get("X-Signature")
    if not signature or not signature.isascii():
        return False
    try:
        return verify_api_signature(state.settings.webhook_secret, body, signature)
    except RecursionError:  # absurdly nested JSON: cannot be re-serialised, so cannot verify
        return False


def _json_object(body: bytes) -> Dict[str, Any]:
    if not body.strip():
        return {}
    try:
        payload = load_json(body, "body")
    except HAVNValidationError as exc:
        raise bad_request(f"The request body {exc.reason}; send a JSON object") from None
    if not isinstance(payload, dict):
        raise bad_request(f"The request body must be a JSON object, not {type(payload).__name__}")
    return payload


def _test_mode() -> bool:
    return request.headers.get("X-Test-Mode", "").strip().lower() == "true"


def _idempotency_key() -> Optional[str]:
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > _MAX_IDEMPOTENCY_KEY:
        raise bad_request(f"Idempotency-Key must be at most {_MAX_IDEMPOTENCY_KEY} characters",
                          field="Idempotency-Key")
    return key or None


def _handle(endpoint: str, call: Callable[[SandboxState, Dict[str, Any], bool], Outcome]) -> Response:
    """The gate every API call passes, then the backend call and event hand-off."""
    state = get_state(current_app)
    decision = state.limiter.hit(endpoint)
    g._havn_sandbox_rate = decision
    if not decision.allowed:
        return _reject(SandboxError(
            429, "RateLimitExceeded",
            f"Rate limit of {decision.limit} requests per minute exceeded on {endpoint}; "
            f"retry after X-RateLimit-Reset ({decision.reset}, epoch seconds)",
        ))
    if not _api_key_ok(state):
        return _reject(SandboxError(401, "AuthenticationError", "Invalid API key"))
    body = request.get_data(cache=True)
    if not _signature_ok(state, body):
        return _reject(SandboxError(401, "AuthenticationError", "Invalid signature"))
    try:
        payload = _json_object(body)
        outcome = call(state, payload, _test_mode())
    except SandboxError as error:
        return _reject(error)
    for event in outcome.events:
        state.dispatcher.emit(event.type, event.data, test_mode=event.test_mode)
    return _answer(outcome.status, outcome.body)


@api.post("/transaction")
def transaction() -> Response:
    """Record a transaction and distribute commission (``Idempotency-Key`` honoured)."""

    def call(state: SandboxState, payload: Dict[str, Any], test_mode: bool) -> Outcome:
        return state.backend.transaction(payload, idempotency_key=_idempotency_key(), test_mode=test_mode)

    return _handle("transaction", call)


@api.post("/user-sync")
def user_sync() -> Response:
    """Create or update a user (single body) or many (``{"users": [...]}``)."""
    return _handle("user_sync", lambda state, payload, test_mode: state.backend.user_sync(
        payload, test_mode=test_mode))


@api.post("/voucher/validate")
def validate_voucher() -> Response:
    """Say whether a HAVN voucher can be used: 200 with no body when it can (the status is the answer)."""
    return _handle("voucher_validate", lambda state, payload, test_mode: state.backend.validate_voucher(
        payload, test_mode=test_mode))


@api.get("/vouchers")
def list_vouchers() -> Response:
    """List the company's vouchers; filters in the query string (unsigned, as HAVN does)."""
    params = request.args.to_dict(flat=True)
    return _handle("vouchers", lambda state, payload, test_mode: state.backend.list_vouchers(
        params, test_mode=test_mode))


@api.post("/login")
def login() -> Response:
    """Mint a single-use SSO token; its ``redirect_url`` is this sandbox's ``/login`` at its public URL."""
    return _handle("login", lambda state, payload, test_mode: state.backend.login(
        payload, frontend_url=state.public_url, test_mode=test_mode))


@frontend.get("/login")
def redeem_login() -> Response:
    """HAVN's frontend: redeem ``?token=`` once and say who is now logged in."""
    state = get_state(current_app)
    token = request.args.get("token", "").strip()
    if not token:
        return _reject(bad_request("Missing ?token=; open the redirect_url that POST /login returned",
                                   field="token"))
    try:
        outcome = state.backend.redeem_login(token)
    except SandboxError as error:
        return _reject(error)
    return _answer(outcome.status, outcome.body)

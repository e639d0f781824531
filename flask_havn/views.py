"""The blueprint: thin JSON routes over the services, closed until the host allows access.

Routes (under ``HAVN_URL_PREFIX``, default ``/havn``)::

    POST /projects                     {"project_name", "upline_referral_code"?}      201
    GET  /projects                     ?limit=&offset=&sync_state=                    200
    GET  /projects/<id>                with members, referral code, downline projects 200
    POST /projects/<id>/sync           {"email", "name"} → the referral code          200
    POST /projects/<id>/members        {"users": [{"email", "name"}]}                 200
    POST /payments                     see :meth:`Payments.record`                   201 (200 if known)
    GET  /payments                     ?limit=&offset=&delivery_state=&project_id=   200
    GET  /payments/<id>                                                               200
    POST /payments/<id>/complete       a pending payment became completed             200
    POST /payments/<id>/retry          put a failed/dead payment back in line         200

They manage money, so every route answers 403 until the host registers
``@havn.authorize`` (a function returning ``True`` to allow the current
request). Errors are JSON ``{"error", "message"}`` (400 adds ``"errors"``: one
message per field), never an HTML page: a routing 404/405 under the prefix
(an unknown path, or a method like ``PROPFIND`` no route lists) is answered
by an app-level handler that leaves every other path's error page to the
host. The webhook endpoint lives in another blueprint and is not behind
``authorize`` (its signature authenticates it).
"""
from __future__ import annotations

import contextlib
import functools
from datetime import datetime
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from .rules import MAX_ID, FieldErrors, load_json
from .state import get_state
from .errors import (
    HAVNRecordNotFoundError,
    HAVNAPIError,
    HAVNAuthError,
    HAVNConfigError,
    HAVNConflictError,
    HAVNError,
    HAVNNetworkError,
    HAVNNotFoundError,
    HAVNRateLimitError,
    HAVNValidationError,
)

__all__ = ["register_routes", "project_json", "payment_json", "member_json", "BLUEPRINT_NAME"]

BLUEPRINT_NAME = "havn"
_CATCH_ALL = "not_found"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_FORBIDDEN_UNREGISTERED = (
    "HAVN routes are closed until you register @havn.authorize: decorate a function that returns True when "
    "the current request may manage HAVN projects and payments (e.g. an admin check)."
)
_FORBIDDEN_DENIED = "Your @havn.authorize callback did not allow this request."
_SEND_JSON = "send a JSON object with Content-Type: application/json"
#: Fields POST /payments cannot do without, and what each must be.
_REQUIRED_PAYMENT_FIELDS = (
    ("project_id", "is required: the id of the project the payment belongs to"),
    ("amount_cents", "is required: an integer amount in minor units (e.g. cents)"),
)
#: Python argument of a service → the JSON field a route calls it (errors name what the caller sent).
_PROJECT_NAMES = {"name": "project_name", "project": "project_id"}
_PAYMENT_NAMES = {"amount": "amount_cents", "subtotal": "subtotal_cents", "project": "project_id"}


@functools.lru_cache(maxsize=None)
def _payment_fields() -> Tuple[str, ...]:
    """Every field POST /payments accepts (the keyword ones in the order of :data:`PAYMENT_FIELDS`).

    Made on the first payment, not at import: the services are imported when first used.
    """
    from .payments import PAYMENT_FIELDS

    return ("project_id", "amount_cents", "currency", "status") + tuple(
        name for name in PAYMENT_FIELDS if name not in ("status", "subtotal")) + ("subtotal_cents",)


def _iso(value: Optional[datetime]) -> Optional[str]:
    return None if value is None else value.isoformat() + "Z"


def member_json(member: Any) -> Dict[str, Any]:
    """A ProjectMember as JSON."""
    return {
        "id": member.id, "email": member.email, "name": member.name, "role": member.role,
        "havn_user_id": member.havn_user_id, "sync_state": member.sync_state, "last_error": member.last_error,
    }


def project_json(project: Any, *, detail: bool = False, downline: Any = ()) -> Dict[str, Any]:
    """A Project as JSON; ``detail`` adds its members and the projects it referred."""
    data: Dict[str, Any] = {
        "id": project.id, "name": project.name, "upline_referral_code": project.upline_referral_code,
        "referral_code": project.referral_code, "havn_associate_id": project.havn_associate_id,
        "sync_state": project.sync_state, "last_error": project.last_error, "synced_at": _iso(project.synced_at),
        "created_at": _iso(project.created_at), "updated_at": _iso(project.updated_at),
    }
    if detail:
        members = sorted(project.members, key=lambda m: (m.role != "owner", m.id))
        data["members"] = [member_json(m) for m in members]
        data["downline_projects"] = [
            {"id": p.id, "name": p.name, "referral_code": p.referral_code, "sync_state": p.sync_state}
            for p in downline
        ]
    return data


def payment_json(payment: Any) -> Dict[str, Any]:
    """A Payment as JSON, with its HAVN delivery state."""
    return {
        "id": payment.id, "project_id": payment.project_id, "amount_cents": payment.amount,
        "currency": payment.currency, "subtotal_cents": payment.subtotal, "status": payment.status,
        "invoice_id": payment.invoice_id, "customer_id": payment.customer_id,
        "customer_email": payment.customer_email, "voucher_code": payment.voucher_code,
        "payment_gateway": payment.payment_gateway,
        "payment_gateway_transaction_id": payment.payment_gateway_transaction_id,
        "transaction_type": payment.transaction_type, "custom_fields": payment.custom_fields,
        "delivery_state": payment.delivery_state, "havn_transaction_id": payment.havn_transaction_id,
        "attempts": payment.attempts, "next_attempt_at": _iso(payment.next_attempt_at),
        "last_error": payment.last_error, "commissions": payment.commissions or [],
        "total_commission": payment.total_commission, "havn_details": payment.havn_details,
        "conversion": None if payment.conversion_mode is None else {
            "mode": payment.conversion_mode, "exchange_rate": payment.exchange_rate,
            "exchange_rate_source": payment.exchange_rate_source, "amount_usd_cents": payment.amount_usd,
            "subtotal_usd_cents": payment.subtotal_usd, "verdict": payment.conversion_verdict,
            "havn_amount_usd_cents": payment.havn_amount_usd,
        },
        "completed_at": _iso(payment.completed_at), "sent_at": _iso(payment.sent_at),
        "created_at": _iso(payment.created_at), "updated_at": _iso(payment.updated_at),
    }


def _error(status: int, error: str, message: str, **extra: Any) -> Tuple[Response, int]:
    body: Dict[str, Any] = {"error": error, "message": message}
    body.update(extra)
    return jsonify(body), status


def _json_errors(errors: Mapping[str, str], names: Mapping[str, str]) -> Dict[str, str]:
    """A service's errors keyed by Python argument, renamed to the route's JSON fields."""
    return {names.get(field, field): message for field, message in errors.items()}


@contextlib.contextmanager
def _json_fields(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a service's validation error with its fields renamed to the route's JSON fields."""
    try:
        yield
    except HAVNRecordNotFoundError:
        raise
    except HAVNValidationError as exc:
        errors = _json_errors(exc.errors or {exc.field: exc.reason}, names)
        field = names.get(exc.field, exc.field)
        raise HAVNValidationError(field, errors[field], errors=errors if exc.errors else None) from None


def _json_body() -> Dict[str, Any]:
    """The request's JSON object, parsed by :func:`flask_havn.rules.load_json` (depth-bounded, strict).

    Not ``request.get_json()``: a body nested a thousand levels deep parses
    there, or raises ``RecursionError`` through it (a 500), and then cannot be
    stored; here it is a 400 before anything runs.
    """
    if not request.is_json:
        raise HAVNValidationError("body", _SEND_JSON)
    try:
        data = load_json(request.get_data(cache=True), "body")
    except HAVNValidationError as exc:
        raise HAVNValidationError("body", f"{exc.reason}; {_SEND_JSON}") from None
    if not isinstance(data, dict):
        raise HAVNValidationError("body", _SEND_JSON)
    return data


def _only(data: Mapping[str, Any], allowed: Tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise HAVNValidationError(unknown[0], f"is not accepted here; send only {', '.join(allowed)}",
                                  errors={name: "is not accepted here" for name in unknown})


def _prefix() -> str:
    return get_state().config.url_prefix


def _not_found(kind: str, ident: int) -> Tuple[Response, int]:
    return _error(404, "not_found", f"no {kind} with id {ident}; list them with GET {_prefix()}/{kind}s")


def _row_or_none(kind: str, ident: int) -> Any:
    """The project or payment with id ``ident`` (``None`` if there is none)."""
    if not 1 <= ident <= MAX_ID:
        return None
    service = get_state().projects if kind == "project" else get_state().payments
    try:
        return service.get(ident)
    except HAVNRecordNotFoundError:
        return None


def _int_arg(name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HAVNValidationError(name, "must be a whole number") from None
    if value < 0 or value > maximum:
        raise HAVNValidationError(name, f"must be between 0 and {maximum}")
    return value


def _page() -> Tuple[int, int]:
    """``(limit, offset)`` of a list route."""
    return _int_arg("limit", 100, 500), _int_arg("offset", 0, 10 ** 9)


# -- views -----------------------------------------------------------------

def create_project() -> Tuple[Response, int]:
    """``POST /projects``: create a project (201)."""
    data = _json_body()
    _only(data, ("project_name", "upline_referral_code"))
    with _json_fields(_PROJECT_NAMES):
        project = get_state().projects.create(data.get("project_name"), data.get("upline_referral_code"))
    return jsonify(project_json(project, detail=True)), 201


def list_projects() -> Response:
    """``GET /projects``: one page of projects, oldest first (``?sync_state=`` filters)."""
    limit, offset = _page()
    rows, total = get_state().projects.list(sync_state=request.args.get("sync_state"), limit=limit, offset=offset)
    return jsonify({"projects": [project_json(p) for p in rows], "total": total, "limit": limit, "offset": offset})


def get_project(project_id: int) -> Any:
    """``GET /projects/<id>``: the project with its members and the projects it referred."""
    project = _row_or_none("project", project_id)
    if project is None:
        return _not_found("project", project_id)
    return jsonify(project_json(project, detail=True, downline=get_state().projects.downline(project)))


def sync_project(project_id: int) -> Any:
    """``POST /projects/<id>/sync``: sync the owner; answers the referral code."""
    project = _row_or_none("project", project_id)
    if project is None:
        return _not_found("project", project_id)
    data = _json_body()
    _only(data, ("email", "name"))
    projects = get_state().projects
    project = projects.sync_owner(project, data.get("email"), data.get("name"))
    return jsonify({"referral_code": project.referral_code,
                    "project": project_json(project, detail=True, downline=projects.downline(project))})


def sync_members(project_id: int) -> Any:
    """``POST /projects/<id>/members``: sync the team; summary and per-member errors."""
    project = _row_or_none("project", project_id)
    if project is None:
        return _not_found("project", project_id)
    data = _json_body()
    _only(data, ("users",))
    if "users" not in data:
        raise HAVNValidationError("users", "is required: a list of {\"email\", \"name\"} objects")
    with _json_fields(_PROJECT_NAMES):
        result = get_state().projects.sync_members(project, data["users"])
    return jsonify({
        "referral_code": project.referral_code,
        "summary": {"total": result.summary.total, "success": result.summary.success,
                    "errors": result.summary.errors},
        "errors": [{"index": e.get("index"), "email": e.get("email"), "error": e.get("error")}
                   for e in result.errors],
        "members": [member_json(m) for m in sorted(project.members, key=lambda m: m.id)],
    })


def _payment_arguments(data: Mapping[str, Any]) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """``POST /payments``' JSON as the arguments of :meth:`Payments.record`."""
    args = (data.get("project_id"), data.get("amount_cents"), data.get("currency", "USD"))
    kwargs = {name: data.get(name) for name in _payment_fields()[4:-1]}
    kwargs.update(subtotal=data.get("subtotal_cents"), status=data.get("status", "completed"))
    return args, kwargs


def record_payment() -> Tuple[Response, int]:
    """``POST /payments``: record (and, inline, deliver) a payment; 201, or 200 if already recorded."""
    data = _json_body()
    _only(data, _payment_fields())
    payments = get_state().payments
    args, kwargs = _payment_arguments(data)
    # Every problem at once: the missing required fields, then what the service finds.
    errors = FieldErrors()
    for name, message in _REQUIRED_PAYMENT_FIELDS:
        if name not in data:
            errors.add(name, message)
    for name, message in _json_errors(payments.validate(*args, **kwargs), _PAYMENT_NAMES).items():
        errors.add(name, message)
    errors.raise_if_any()
    with _json_fields(_PAYMENT_NAMES):
        payment, created = payments.record_or_get(*args, **kwargs)
    return jsonify(payment_json(payment)), 201 if created else 200


def list_payments() -> Response:
    """``GET /payments``: one page of payments, newest first (``?delivery_state=``, ``?project_id=``)."""
    limit, offset = _page()
    project = request.args.get("project_id")
    if project is not None:
        try:
            project = int(project)
        except ValueError:
            raise HAVNValidationError("project_id", "must be the integer id of a project") from None
    with _json_fields(_PAYMENT_NAMES):
        rows, total = get_state().payments.list(delivery_state=request.args.get("delivery_state"),
                                                project=project, limit=limit, offset=offset)
    return jsonify({"payments": [payment_json(p) for p in rows], "total": total, "limit": limit, "offset": offset})


def get_payment(payment_id: int) -> Any:
    """``GET /payments/<id>``: the payment and its HAVN delivery state."""
    payment = _row_or_none("payment", payment_id)
    if payment is None:
        return _not_found("payment", payment_id)
    return jsonify(payment_json(payment))


def complete_payment(payment_id: int) -> Any:
    """``POST /payments/<id>/complete``: a pending payment was paid; deliver it."""
    payment = _row_or_none("payment", payment_id)
    if payment is None:
        return _not_found("payment", payment_id)
    return jsonify(payment_json(get_state().payments.complete(payment)))


def retry_payment(payment_id: int) -> Any:
    """``POST /payments/<id>/retry``: put a failed or dead payment back in line."""
    payment = _row_or_none("payment", payment_id)
    if payment is None:
        return _not_found("payment", payment_id)
    return jsonify(payment_json(get_state().payments.retry(payment)))


def not_found(rest: str = "") -> Tuple[Response, int]:
    """Anything else under the prefix: 405 if another route has the path, else 404 — JSON either way."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in _METHODS:
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != f"{BLUEPRINT_NAME}.{_CATCH_ALL}":
            allowed.append(method)
    if allowed:
        response, status = _error(405, "method_not_allowed",
                                  f"{request.method} is not allowed here; use {', '.join(allowed)}")
        response.headers["Allow"] = ", ".join(allowed)
        return response, status
    return _error(404, "not_found", f"no HAVN route at {request.path}")


def _method_not_allowed(allowed: Tuple[str, ...]) -> Any:
    def view(**_: Any) -> Tuple[Response, int]:
        response, status = _error(405, "method_not_allowed",
                                  f"{request.method} is not allowed here; use {', '.join(allowed)}")
        response.headers["Allow"] = ", ".join(allowed)
        return response, status
    return view


# -- access and errors -----------------------------------------------------

def _authorize() -> Optional[Tuple[Response, int]]:
    """Default deny: 403 unless the host's ``@havn.authorize`` callback returns true."""
    if request.endpoint == f"{BLUEPRINT_NAME}.{_CATCH_ALL}":
        return None  # unknown paths reveal nothing; answer them plainly
    callback = get_state().callbacks.authorize
    if callback is None:
        return _error(403, "forbidden", _FORBIDDEN_UNREGISTERED)
    if not callback():
        return _error(403, "forbidden", _FORBIDDEN_DENIED)
    return None


def _handle_havn_error(exc: HAVNError) -> Tuple[Response, int]:
    """Map the error tree to HTTP: the client's fault 4xx, HAVN's or the network's 5xx."""
    if isinstance(exc, HAVNRecordNotFoundError):
        return _error(404, "not_found", exc.message)
    if isinstance(exc, HAVNValidationError):
        return _error(400, "validation_error", exc.message, errors=exc.errors or {exc.field: exc.reason})
    if isinstance(exc, HAVNConflictError):
        return _error(409, "conflict", exc.message)
    if isinstance(exc, HAVNNotFoundError):
        return _error(422, "havn_not_found", exc.message)
    if isinstance(exc, HAVNRateLimitError):
        response, status = _error(503, "havn_rate_limited", exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(int(exc.retry_after + 0.999))
        return response, status
    if isinstance(exc, HAVNAuthError):
        return _error(502, "havn_auth_failed", exc.message)
    if isinstance(exc, HAVNNetworkError):
        return _error(504, "havn_unreachable", exc.message)
    if isinstance(exc, HAVNAPIError):
        status = exc.status_code or 502
        if 400 <= status < 500:
            return _error(422, "havn_rejected", exc.message)
        return _error(502, "havn_error", exc.message)
    if isinstance(exc, HAVNConfigError):
        current_app.logger.error("HAVN configuration error: %s", exc.message)
        return _error(500, "havn_config_error", exc.message)
    return _error(500, "havn_error", exc.message)


def _handle_http_error(exc: HTTPException) -> Tuple[Response, int]:
    status = exc.code or 500
    return _error(status, (exc.name or "error").lower().replace(" ", "_"), exc.description or exc.name or "")


#: The routing errors answered as JSON under the prefix by an app-level handler.
_ROUTING_ERRORS = {404: NotFound, 405: MethodNotAllowed}

_ID = "int"
#: rule → {method: (endpoint, view)}
_ROUTES: Dict[str, Dict[str, Tuple[str, Any]]] = {
    "/projects": {"POST": ("create_project", create_project), "GET": ("list_projects", list_projects)},
    f"/projects/<{_ID}:project_id>": {"GET": ("get_project", get_project)},
    f"/projects/<{_ID}:project_id>/sync": {"POST": ("sync_project", sync_project)},
    f"/projects/<{_ID}:project_id>/members": {"POST": ("sync_members", sync_members)},
    "/payments": {"POST": ("record_payment", record_payment), "GET": ("list_payments", list_payments)},
    f"/payments/<{_ID}:payment_id>": {"GET": ("get_payment", get_payment)},
    f"/payments/<{_ID}:payment_id>/complete": {"POST": ("complete_payment", complete_payment)},
    f"/payments/<{_ID}:payment_id>/retry": {"POST": ("retry_payment", retry_payment)},
}


def _blueprint(url_prefix: str) -> Blueprint:
    bp = Blueprint(BLUEPRINT_NAME, __name__, url_prefix=url_prefix or None)
    for number, (rule, methods) in enumerate(_ROUTES.items()):
        for method, (endpoint, view) in methods.items():
            bp.add_url_rule(rule, endpoint, view, methods=[method])
        allowed = tuple(sorted(methods))
        others = [m for m in _METHODS if m not in methods]
        # Other methods get a JSON 405 (a routing 405 would bypass the blueprint's handlers).
        bp.add_url_rule(rule, f"method_not_allowed_{number}", _method_not_allowed(allowed), methods=others)
    if url_prefix:
        # Never on an empty prefix: it would swallow the host's own 404s.
        bp.add_url_rule("/<path:rest>", _CATCH_ALL, not_found, methods=list(_METHODS))
    bp.before_request(_authorize)
    bp.register_error_handler(HAVNError, _handle_havn_error)
    bp.register_error_handler(HTTPException, _handle_http_error)
    return bp


def _under_prefix(path: str) -> bool:
    """``True`` if ``path`` is HAVN's: under a non-empty ``HAVN_URL_PREFIX`` (whole path segments)."""
    prefix = _prefix()
    return bool(prefix) and (path == prefix or path.startswith(prefix + "/"))


def _endpoints_here() -> Dict[str, str]:
    """``{method: endpoint}`` of every route at the current path."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    found: Dict[str, str] = {}
    for method in _METHODS:
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        found[method] = endpoint
    return found


def _app_error_handler(app: Flask, code: int) -> None:
    """Answer routing 404/405 under the HAVN prefix as JSON; leave every other path to the host.

    Werkzeug raises these before any view runs (e.g. ``PROPFIND /havn/projects``),
    so the blueprint's own handlers never see them. Elsewhere the host's own
    handler answers (one for ``code`` registered before HAVN, or for
    ``HTTPException``), or Flask's page. A handler for ``code`` the host
    registers after HAVN replaces this one, on every path.
    """
    from .webhooks import BLUEPRINT_NAME as WEBHOOKS

    exc_class = _ROUTING_ERRORS[code]
    previous = app.error_handler_spec.get(None, {}).get(code, {}).get(exc_class)
    ours = (f"{BLUEPRINT_NAME}.", f"{WEBHOOKS}.")

    def host_answer(exc: HTTPException) -> Any:
        """What Flask would answer without this handler: the host's handler, else its default page."""
        fallback = previous
        if fallback is None:  # a handler the host registered for HTTPException (or a base class)
            generic = app.error_handler_spec.get(None, {}).get(None, {})
            fallback = next((generic[cls] for cls in type(exc).__mro__ if cls in generic), None)
        return exc if fallback is None else app.ensure_sync(fallback)(exc)

    def handler(exc: HTTPException) -> Any:
        endpoints = _endpoints_here() if code == 405 else {}
        if not (_under_prefix(request.path) or any(e.startswith(ours) for e in endpoints.values())):
            return host_answer(exc)
        if f"{WEBHOOKS}.receive" in endpoints.values():
            allowed = ["POST"]  # the webhook view answers its other methods 405 itself
        else:
            allowed = [method for method, endpoint in endpoints.items()
                       if endpoint != f"{BLUEPRINT_NAME}.{_CATCH_ALL}"
                       and not endpoint.startswith(f"{BLUEPRINT_NAME}.method_not_allowed_")]
        if not allowed:
            return _error(404, "not_found", f"no HAVN route at {request.path}")
        response, status = _error(405, "method_not_allowed",
                                  f"{request.method} is not allowed here; use {', '.join(allowed)}")
        response.headers["Allow"] = ", ".join(allowed)
        return response, status

    app.register_error_handler(code, handler)


def register_routes(app: Flask, state: Any) -> None:
    """Register the HAVN blueprint on ``app`` under ``HAVN_URL_PREFIX``, and its JSON 404/405 there."""
    app.register_blueprint(_blueprint(state.config.url_prefix))
    for code in (404, 405):
        _app_error_handler(app, code)

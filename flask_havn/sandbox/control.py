"""The sandbox's control routes under the reserved prefix ``/_sandbox/``.

Not part of HAVN: tests and demos use them to reset, seed, inspect state,
emit events on demand, inject faults, change exchange rates and point the
webhook dispatcher somewhere. JSON in and out; bad input is a 400 naming the
problem. Every state-changing route (any method but GET) takes a JSON object
body sent as ``Content-Type: application/json`` — ``{}`` when there is nothing
to say, as for ``POST /reset`` — and answers anything else with a 415, so no
web page can drive them with a preflight-free cross-site ``text/plain`` or
form POST. No authentication: the sandbox only ever holds fake data, and the
standalone server answers loopback (or configured) host names only.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, cast
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, jsonify, request

from ..errors import HAVNValidationError
from ..rules import load_json
from .errors import SandboxError, bad_request
from .settings import public_slug, redirect_url
from .state import SandboxState, get_state

__all__ = ["control"]

control = Blueprint("havn_sandbox_control", __name__, url_prefix="/_sandbox")

_EVENT_TYPES = ("commission.distributed", "transaction.conversion_failed")
_MAX_WAIT = 30.0
#: Methods that change nothing, so take no body.
_READ_ONLY = ("GET", "HEAD", "OPTIONS")


@control.errorhandler(SandboxError)
def _sandbox_error(error: SandboxError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    return response


@control.errorhandler(HAVNValidationError)
def _validation_error(error: HAVNValidationError) -> Response:
    return _sandbox_error(bad_request(error.message, field=error.field))


def _state() -> SandboxState:
    return get_state(current_app)


@control.before_request
def _json_object_bodies_only() -> None:
    """Refuse a state-changing request whose body is not a JSON object sent as JSON (415 / 400).

    A web page can POST ``text/plain`` or a form cross-site without a CORS
    preflight; only ``Content-Type: application/json`` (or ``+json``) is read,
    which a browser never sends cross-site without asking first.
    """
    if request.method in _READ_ONLY:
        return
    what = f"{request.method} {request.path}"
    if not request.is_json:
        sent = repr(request.mimetype[:100]) if request.mimetype else "no Content-Type"
        raise SandboxError(415, "UnsupportedMediaType",
                           f"{what} takes a JSON object body with Content-Type: application/json, not {sent}; "
                           "send it as JSON ({} when there is nothing to say, e.g. requests' json={})")
    try:
        body = load_json(request.get_data(), "body")
    except HAVNValidationError as exc:
        raise bad_request(f"{what} takes a JSON object body ({{}} when there is nothing to say); this one "
                          f"{exc.reason}") from None
    if not isinstance(body, dict):
        raise bad_request(f"{what} takes a JSON object body ({{}} when there is nothing to say)")
    g.havn_sandbox_body = body


def _body() -> Dict[str, Any]:
    """The JSON object sent (parsed and checked by :func:`_json_object_bodies_only`)."""
    return cast(Dict[str, Any], g.havn_sandbox_body)


def _faults_view(state: SandboxState) -> Dict[str, Any]:
    return {"spec": state.faults.spec, "stats": state.faults.stats()}


@control.post("/reset")
def reset() -> Response:
    """Drop every user, transaction, event, counter and fault (send ``{}``)."""
    _state().reset()
    return jsonify({"success": True, "message": "Sandbox reset"})


@control.post("/seed")
def seed() -> Response:
    """Create associates (in order, so hierarchies can be built), vouchers and rates."""
    spec = _body()
    try:
        created = _state().backend.seed(spec)
    except ValueError as exc:
        raise bad_request(f"Bad seed spec: {exc}") from None
    return jsonify(created)


@control.get("/state")
def state() -> Response:
    """Everything the sandbox holds, plus events, deliveries and faults."""
    sandbox = _state()
    dump = dict(sandbox.backend.dump())
    dump["events"] = sandbox.dispatcher.events()
    dump["event_status"] = sandbox.dispatcher.statuses()
    dump["deliveries"] = sandbox.dispatcher.deliveries()
    dump["faults"] = _faults_view(sandbox)
    dump["webhook_url"] = sandbox.dispatcher.url
    return jsonify(dump)


@control.post("/events")
def emit_event() -> Response:
    """Emit an event now: ``{"type", "transaction_id"?, "data"?}`` → 202 with its envelope."""
    spec = _body()
    event_type = spec.get("type")
    if event_type not in _EVENT_TYPES:
        raise bad_request(f"'type' must be one of {', '.join(_EVENT_TYPES)}", field="type")
    transaction_id = spec.get("transaction_id")
    if transaction_id is not None and not isinstance(transaction_id, str):
        raise bad_request("'transaction_id' must be a string", field="transaction_id")
    overrides = spec.get("data")
    if overrides is not None and not isinstance(overrides, dict):
        raise bad_request("'data' must be an object merged into the event's data", field="data")
    sandbox = _state()
    event = sandbox.backend.build_event(event_type, transaction_id=transaction_id, overrides=overrides)
    envelope = sandbox.dispatcher.emit(event.type, event.data, test_mode=event.test_mode)
    response = jsonify(envelope)
    response.status_code = 202
    return response


@control.post("/events/flush")
def flush_events() -> Response:
    """Deliver queued events now (retries too) and wait: ``{"timeout"?: seconds}`` → what is left pending."""
    raw = _body().get("timeout", 5)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= _MAX_WAIT:
        raise bad_request(f"'timeout' must be a number of seconds from 0 to {_MAX_WAIT:g}", field="timeout")
    sandbox = _state()
    left = sandbox.dispatcher.flush(float(raw))
    return jsonify({"pending": sandbox.dispatcher.pending(), "idle": left == 0,
                    "event_status": sandbox.dispatcher.statuses()})


@control.put("/faults")
def put_faults() -> Response:
    """Replace the fault spec (see ``faults.py``); 400 with the reason when it is bad."""
    sandbox = _state()
    try:
        sandbox.faults.configure(_body())
    except ValueError as exc:
        raise bad_request(str(exc), field="faults") from None
    return jsonify(_faults_view(sandbox))


@control.delete("/faults")
def delete_faults() -> Response:
    """Stop injecting faults (send ``{}``)."""
    sandbox = _state()
    sandbox.faults.clear()
    return jsonify(_faults_view(sandbox))


@control.put("/rates")
def put_rates() -> Response:
    """Set exchange rates: ``{"IDR": "0.00007"}`` (USD per one major unit, as strings)."""
    rates = _body()
    try:
        result = _state().backend.set_rates(rates)
    except ValueError as exc:
        raise bad_request(f"Bad rates: {exc}") from None
    return jsonify(result)


@control.get("/deliveries")
def deliveries() -> Response:
    """The webhook attempt log; ``?wait=SECONDS`` first waits for queued deliveries to finish."""
    sandbox = _state()
    idle: Optional[bool] = None
    raw_wait = request.args.get("wait")
    if raw_wait is not None:
        try:
            wait = float(raw_wait)
        except ValueError:
            raise bad_request("'wait' must be a number of seconds", field="wait") from None
        if not 0 <= wait <= _MAX_WAIT:
            raise bad_request(f"'wait' must be between 0 and {_MAX_WAIT:g} seconds", field="wait")
        idle = sandbox.dispatcher.wait_idle(wait)
    return jsonify({"deliveries": sandbox.dispatcher.deliveries(), "idle": idle})


@control.put("/webhook-url")
def put_webhook_url() -> Response:
    """Point event delivery at ``{"url": "http://…"}`` (``null`` turns delivery off)."""
    url = _body().get("url")
    if url is not None:
        if not isinstance(url, str):
            raise bad_request("'url' must be an http(s) URL string or null", field="url")
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise bad_request("'url' must be an absolute http:// or https:// URL", field="url")
        url = url.strip()
    sandbox = _state()
    sandbox.dispatcher.url = url
    return jsonify({"url": url})


@control.put("/public-link")
def put_public_link() -> Response:
    """Set the public referral link: ``{"slug": "mycompany", "redirect_url": "https://…/login"}``.

    Either key may be left out (kept); ``"redirect_url": null`` turns the link off (404).
    """
    body = _body()
    sandbox = _state()
    slug, url = sandbox.public_redirect_slug, sandbox.public_auth_redirect_url
    for key, parse in (("slug", public_slug), ("redirect_url", redirect_url)):
        if key in body:
            try:
                value = parse(body[key])
            except ValueError as exc:
                raise bad_request(f"'{key}' {exc}", field=key) from None
            slug, url = (value, url) if key == "slug" else (slug, value)
    sandbox.public_redirect_slug, sandbox.public_auth_redirect_url = slug, url
    return jsonify({"slug": slug, "redirect_url": url})

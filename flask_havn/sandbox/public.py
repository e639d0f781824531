"""HAVN's public referral link, ``GET /r/<slug>?ref=<code>&vc=<voucher>`` (contract §8).

HAVN checks the link and sends the visitor (302) to the company's configured
``public_auth_redirect_url`` — its login page — with ``ref`` and ``vc`` in the
query string. 400 without ``ref``; 404 for an unknown slug (or no redirect URL
configured) or an unknown referral code; a voucher that is expired, used up or
inactive still redirects, without ``vc``. No API key: this is a browser link.
Configured by ``HAVN_SANDBOX_PUBLIC_REDIRECT_SLUG`` /
``HAVN_SANDBOX_PUBLIC_AUTH_REDIRECT_URL`` and ``PUT /_sandbox/public-link``.
"""
from __future__ import annotations

from typing import Dict, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from .errors import SandboxError, bad_request, not_found
from .state import get_state

__all__ = ["public", "with_params"]

public = Blueprint("havn_sandbox_public", __name__)


@public.errorhandler(SandboxError)
def _sandbox_error(error: SandboxError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    return response


def with_params(url: str, params: Dict[str, Optional[str]]) -> str:
    """``url`` with ``params`` set in its query string (replacing same-named ones; ``None`` drops them)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


@public.get("/r/<slug>")
def public_link(slug: str) -> Response:
    """Check the link; 302 to the login page with ``ref`` (and a usable ``vc``)."""
    sandbox = get_state(current_app)
    target = sandbox.public_auth_redirect_url
    if slug != sandbox.public_redirect_slug or target is None:
        raise not_found(f"no company has the public link slug {slug[:100]!r}", field="slug")
    ref = request.args.get("ref", "").strip()
    if not ref:
        raise bad_request("ref is required: the associate's referral code (…/r/<slug>?ref=HAVN-MJ-001)",
                          field="ref")
    passed = sandbox.backend.public_link(ref, request.args.get("vc"))
    return redirect(with_params(target, passed), code=302)

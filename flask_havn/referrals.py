"""Public referral links (contract §8): capture ``?ref=&vc=``, attach them to a project, check vouchers.

HAVN's public link ``https://<havn>/r/<slug>?ref=<code>&vc=<voucher>`` sends
the visitor to the SaaS's login page with ``ref`` and ``vc`` in the query
string. With ``HAVN_CAPTURE_REFERRALS`` (or ``havn.capture_referrals()``)
every GET that carries them keeps them in a first-party cookie: a value
signed and timestamped with itsdangerous (key: ``HAVN_REFERRAL_SECRET``,
else the app's ``SECRET_KEY``), ``HttpOnly``, ``SameSite=Lax``, ``Secure``
when the request is, valid for ``HAVN_REFERRAL_MAX_AGE`` seconds. A
tampered, expired or malformed value is ignored (and the cookie dropped),
never an error page. The capture only reads the query string and writes a
cookie: it never redirects.

:meth:`Referrals.attach` then gives the captured code to a project as its
upline (only when it has none and is not synced yet: HAVN cannot change an
associate's upline afterwards) and remembers the voucher, which the
project's first payment sends as ``promo_code``
(:func:`first_payment_voucher`, called by :mod:`flask_havn.payments`).

Whether HAVN knows a referral code: the contract has no lookup endpoint, so
:meth:`Referrals.code_is_known` asks through an existing call that HAVN
validates fully without persisting anything — a user sync in test mode
(``X-Test-Mode: true``) with the code as ``upline_code``: 404 means unknown.
"""
from __future__ import annotations

import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import sqlalchemy as sa
from flask import Response, current_app, g, has_request_context, request
from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from . import rules
from .announce import announce
from .config import SANDBOX_BASE_URL
from .errors import HAVNConfigError, HAVNNotFoundError, HAVNValidationError
from .models import utcnow
from .signals import referral_attached
from .transport import Transport

if TYPE_CHECKING:  # pragma: no cover
    from .client import HAVNClient
    from .state import HAVNState

__all__ = ["Referral", "ReferralAttachment", "Referrals", "VoucherCheck",
           "first_payment_voucher", "use_referral_voucher", "LOOKUP_EMAIL"]

#: A referral code as captured: HAVN's codes (``HAVN-MJ-001``) and anything 3–50 of letters, digits, ``-``, ``_``.
CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,49}")
#: A voucher as captured (``vc`` is "any format" in HAVN's docs; ``DISC50``, ``HAVN-MJ-SE-ABC123``).
VOUCHER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
#: itsdangerous salt of the referral cookie (keeps it apart from sessions signed with the same key).
_SALT = "flask-havn.referral"
#: The address of the test-mode user sync that looks a code up (``.invalid``: never a real mailbox).
LOOKUP_EMAIL = "referral-check@flask-havn.invalid"
_G_REFERRAL = "_havn_referral"
_G_WRITE = "_havn_referral_write"


@dataclass(frozen=True)
class Referral:
    """What a referral link left: the associate's ``code`` (upper-cased), the ``voucher`` and when."""

    code: str
    voucher: Optional[str]
    #: When the link was followed (aware UTC, from the cookie's signed timestamp).
    captured_at: datetime


@dataclass(frozen=True)
class ReferralAttachment:
    """What :meth:`Referrals.attach` did: ``attached`` or not, the referral, and why in words."""

    attached: bool
    referral: Optional[Referral]
    reason: str

    def __bool__(self) -> bool:
        return self.attached


@dataclass(frozen=True)
class VoucherCheck:
    """HAVN's answer on a voucher, for a checkout page (truthy when the voucher may be used).

    ``status`` is ``"valid"`` (HAVN answered 200, by status alone),
    ``"unusable"`` (400: expired, used up or inactive), ``"unknown"`` (404) or
    ``"below_minimum"`` (422: the amount does not meet its requirements);
    ``message`` is a sentence for the customer, ``detail`` HAVN's own text.
    """

    code: str
    valid: bool
    status: str
    status_code: int
    message: str
    detail: str = ""

    def __bool__(self) -> bool:
        return self.valid


_VOUCHER_STATUS = {
    200: ("valid", "Voucher {code} applies to this order."),
    400: ("unusable", "Voucher {code} has expired, is used up or is no longer active."),
    404: ("unknown", "Voucher {code} does not exist; check the code."),
    422: ("below_minimum", "This order does not meet voucher {code}'s requirements (e.g. its minimum purchase)."),
}


def _clock_serializer(secret: str, clock: Callable[[], float]) -> URLSafeTimedSerializer:
    """A timed serializer that reads the time from ``clock`` (tests travel in time without sleeping)."""

    class _ClockSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return URLSafeTimedSerializer(secret, salt=_SALT, signer=_ClockSigner)


def _single(name: str) -> Optional[str]:
    """The one value of query parameter ``name``; ``None`` when absent or given several times."""
    values = request.args.getlist(name)
    return values[0].strip() if len(values) == 1 else None


class Referrals:
    """Capture, attach and voucher checks of one app (``havn.referrals``).

    ``clock`` returns epoch seconds (``time.time``); replace it to test the
    attribution window without sleeping.
    """

    def __init__(self, state: "HAVNState", *, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self.clock = clock

    def __repr__(self) -> str:
        return "<Referrals>"

    # -- capture -----------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether GET requests are captured (``HAVN_CAPTURE_REFERRALS`` or ``havn.capture_referrals()``)."""
        return self._state.config.capture_referrals or self._state.callbacks.capture_referrals

    def _serializer(self) -> URLSafeTimedSerializer:
        secret = self._state.config.referral_secret or current_app.secret_key
        if not secret:
            raise HAVNConfigError("capturing referral links needs a signing key: set app.secret_key (SECRET_KEY) "
                                  "or HAVN_REFERRAL_SECRET")
        return _clock_serializer(str(secret), self.clock)

    def _from_cookie(self) -> Optional[Referral]:
        """The referral the request's cookie holds, or ``None`` (absent, tampered, expired or malformed)."""
        config = self._state.config
        token = request.cookies.get(config.referral_cookie)
        if not token:
            return None
        try:
            data, signed_at = self._serializer().loads(token, max_age=config.referral_max_age,
                                                       return_timestamp=True)
        except BadData:
            return None
        if not isinstance(data, dict):
            return None
        code, voucher = data.get("r"), data.get("v")
        if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
            return None
        if voucher is not None and (not isinstance(voucher, str) or not VOUCHER_PATTERN.fullmatch(voucher)):
            return None
        return Referral(code=code, voucher=voucher, captured_at=signed_at)

    def _from_query(self) -> Optional[Referral]:
        """The referral a GET's query string carries, format-checked; a bad ``vc`` alone is dropped."""
        config = self._state.config
        code = _single(config.referral_code_param)
        if code is None or not CODE_PATTERN.fullmatch(code):
            return None
        voucher = _single(config.referral_voucher_param)
        if voucher is not None and not VOUCHER_PATTERN.fullmatch(voucher):
            voucher = None
        return Referral(code=code.upper(), voucher=voucher or None,
                        captured_at=datetime.fromtimestamp(int(self.clock()), tz=timezone.utc))

    def before_request(self) -> None:
        """Read the cookie, then (on a GET) the query string, as the policy says; runs before each request."""
        if not self.enabled:
            return
        had_cookie = self._state.config.referral_cookie in request.cookies
        current = self._from_cookie()
        setattr(g, _G_REFERRAL, current)
        if had_cookie and current is None:
            setattr(g, _G_WRITE, "clear")  # a bad value is dropped, never an error
        if request.method != "GET":
            return
        captured = self._from_query()
        if captured is None or (current is not None and self._state.config.referral_policy == "first"):
            return
        setattr(g, _G_REFERRAL, captured)
        setattr(g, _G_WRITE, "set")

    def after_request(self, response: Response) -> Response:
        """Write or clear the cookie as this request decided (never anything else: no redirect)."""
        action = g.pop(_G_WRITE, None)
        if action is None:
            return response
        config = self._state.config
        options = {"path": "/", "httponly": True, "samesite": "Lax", "secure": request.is_secure}
        referral = g.get(_G_REFERRAL)
        if action == "set" and referral is not None:
            token = self._serializer().dumps({"r": referral.code, "v": referral.voucher})
            response.set_cookie(config.referral_cookie, token, max_age=config.referral_max_age, **options)
        else:
            response.delete_cookie(config.referral_cookie, **options)
        return response

    def current(self) -> Optional[Referral]:
        """The referral captured for this visitor (``None`` when none, or outside a request).

        ``flask_havn.current_referral`` is this, for the current app.
        """
        if not has_request_context():
            return None
        if _G_REFERRAL in g:
            return g.get(_G_REFERRAL)  # type: ignore[no-any-return]
        return self._from_cookie()

    def forget(self) -> None:
        """Drop the captured referral: the response clears the cookie."""
        if has_request_context():
            setattr(g, _G_REFERRAL, None)
            setattr(g, _G_WRITE, "clear")

    # -- attach --------------------------------------------------------------------

    def attach(self, project: Any, referral: Optional[Referral] = None) -> ReferralAttachment:
        """Make the captured referral ``project``'s upline and remember its voucher; clears the capture.

        ``referral`` defaults to :attr:`current`. Attaches only to a project
        that has no upline and is not synced yet (HAVN fixes an associate's
        upline when it is created): otherwise nothing changes and the result
        says why (``attached`` is false), and the capture is cleared all the
        same — the visitor's account already has its place. A code HAVN does
        not know raises :class:`HAVNValidationError` (``referral_code``) and
        changes nothing; a failing lookup raises its HAVN error. Sends
        ``referral_attached`` after the commit.
        """
        from .projects import commit

        state = self._state.require_db()
        session = state.session
        project = state.projects.get(project)
        referral = referral if referral is not None else self.current()
        if referral is None:
            return ReferralAttachment(False, None, "no referral link was captured for this visitor")
        if project.upline_referral_code:
            self.forget()
            return ReferralAttachment(False, referral, f"project {project.id} already has the upline "
                                      f"{project.upline_referral_code}; a referral never replaces it")
        if project.referral_code or project.sync_state == "synced":
            self.forget()
            return ReferralAttachment(False, referral, f"project {project.id} is already synced to HAVN without "
                                      "an upline, and HAVN cannot give an associate an upline afterwards")
        code = rules.check_code(referral.code, "referral_code", upper=True)
        commit(session)  # no transaction stays open while HAVN answers
        if not self.code_is_known(code):
            raise HAVNValidationError("referral_code", f"{code} is not a referral code HAVN knows; the link is "
                                      "wrong or the associate is gone, so create the project without an upline")
        Project = state.models.Project  # type: ignore[union-attr]
        changed = session.execute(
            sa.update(Project)
            .where(Project.id == project.id, Project.upline_referral_code.is_(None), Project.referral_code.is_(None))
            .values(upline_referral_code=code, referral_voucher_code=referral.voucher,
                    referral_voucher_used_at=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)).rowcount == 1
        commit(session)
        session.refresh(project)
        self.forget()
        if not changed:  # another request attached or synced it meanwhile
            return ReferralAttachment(False, referral, f"project {project.id} got an upline or was synced meanwhile")
        announce(referral_attached, f"project {project.id}", project=project, referral=referral)
        return ReferralAttachment(True, referral, f"project {project.id} now has the upline {code}")

    def code_is_known(self, code: str) -> bool:
        """Whether HAVN knows referral ``code``: a test-mode user sync with it as upline (404: unknown).

        Test mode persists nothing at HAVN (contract §9); the user is
        :data:`LOOKUP_EMAIL`. Other failures (network, auth) raise.
        """
        code = rules.check_code(code, "referral_code", upper=True)
        with self._test_mode_client() as client:
            try:
                client.users.sync(LOOKUP_EMAIL, "flask_havn referral check", upline_code=code,
                                  create_associate=True, is_owner=False)
            except HAVNNotFoundError:
                return False
        return True

    @contextmanager
    def _test_mode_client(self) -> Iterator["HAVNClient"]:
        from .client import HAVNClient

        config = self._state.config
        transport = Transport(api_key=config.api_key or "", webhook_secret=config.webhook_secret or "",
                              base_url=config.base_url, timeout=config.timeout, max_retries=config.max_retries,
                              backoff_factor=config.backoff_factor, test_mode=True)
        try:
            if self._state.sandbox_app is not None:
                from .sandbox.adapter import WSGIAdapter

                transport.mount(SANDBOX_BASE_URL, WSGIAdapter(self._state.sandbox_app))
            yield HAVNClient(transport=transport)
        finally:
            transport.close()

    # -- vouchers ------------------------------------------------------------------

    def validate_voucher(self, code: str, amount: Optional[int] = None,
                         currency: Optional[str] = None) -> VoucherCheck:
        """Ask HAVN whether voucher ``code`` may be used for ``amount`` minor units of ``currency``.

        Bad arguments raise :class:`HAVNValidationError` (nothing is sent);
        HAVN's 400/404/422 come back as a :class:`VoucherCheck`; network,
        auth and server errors raise.
        """
        answer = self._state.make_client().vouchers.validate(code, amount, currency)
        status, text = _VOUCHER_STATUS.get(answer.status_code, ("unusable", "Voucher {code} cannot be used."))
        return VoucherCheck(code=code.strip(), valid=answer.valid, status=status, status_code=answer.status_code,
                            message=text.format(code=code.strip()), detail=answer.reason)


def first_payment_voucher(state: "HAVNState", project_id: Any) -> Optional[Any]:
    """The project row whose remembered referral voucher the payment being recorded uses, else ``None``.

    Only a project's first payment uses it: the voucher is set, not used
    yet, and the project has no payment recorded. The caller marks it used in
    the same transaction that inserts the payment.
    """
    models = state.models
    if models is None or project_id is None:
        return None
    project = state.session.get(models.Project, project_id)
    if project is None or not project.referral_voucher_code or project.referral_voucher_used_at is not None:
        return None
    if models.Payment.query.filter_by(project_id=project.id).first() is not None:
        return None
    return project


def use_referral_voucher(state: "HAVNState", project: Any, payment: Any) -> bool:
    """Mark the project's referral voucher used, once (a conditional UPDATE); whether this call did.

    When a concurrent first payment used it first, the voucher is taken off
    ``payment`` (the one the caller filled in; ``None`` when the caller named
    its own voucher), so only one payment ever sends it.
    """
    Project = state.models.Project  # type: ignore[union-attr]
    won = state.session.execute(
        sa.update(Project)
        .where(Project.id == project.id, Project.referral_voucher_used_at.is_(None))
        .values(referral_voucher_used_at=utcnow())).rowcount == 1
    if not won and payment is not None:
        payment.voucher_code = None
    return bool(won)



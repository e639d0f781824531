"""HAVN's state and business rules, without HTTP (the moto-style "backend" of the sandbox).

Every public method runs under one ``threading.RLock`` in its own database
transaction: committed on success, rolled back on error, and rolled back in test
mode (``X-Test-Mode: true``), so a test-mode call computes the full answer but
persists nothing. The rules themselves live in ``users.py`` (user sync),
``transactions.py`` (transactions, commissions), ``vouchers.py`` and ``admin.py``
(seed, events on demand, dump); this class wires them to storage and the clock.

Determinism: with ``settings.seed`` set, ids, referral codes and voucher codes
depend only on the seed and the sequence of calls. Timestamps come from the
``clock`` (the real UTC clock unless one is injected); inject a fixed clock for
byte-identical answers.
"""
from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from .admin import build_event_data, checked_rates, deep_merge, dump, seed, store_rates
from .context import Ctx, Ids, utcnow
from .errors import SandboxError, bad_request, not_found
from .outcome import Event, Outcome
from .settings import SandboxSettings
from .store import LoginTokenRow, Store, UserRow
from .transactions import record_transaction
from .users import find_associate, find_user, user_dict, user_sync
from .vouchers import find_voucher, list_vouchers, validate_voucher, voucher_problem

__all__ = ["SandboxBackend", "Event", "Outcome", "SandboxError", "LOGIN_SALT"]

#: itsdangerous salt of login tokens (the key is the webhook secret).
LOGIN_SALT = "havn-sandbox-login"
T = TypeVar("T")
Clock = Callable[[], datetime]


def _login_serializer(secret: str, clock: Clock) -> URLSafeTimedSerializer:
    """A timed serializer whose timestamps come from ``clock`` (so expiry is testable)."""

    class _ClockSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock().timestamp())

    return URLSafeTimedSerializer(secret, salt=LOGIN_SALT, signer=_ClockSigner)


def _payload(payload: Any) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise bad_request("the request body must be a JSON object")
    return payload


class SandboxBackend:
    """HAVN's state and business rules; thread-safe (one lock); no HTTP."""

    def __init__(self, settings: SandboxSettings, *, clock: Optional[Clock] = None) -> None:
        self.settings = settings
        self._clock: Clock = clock or utcnow
        self._lock = threading.RLock()
        self._store = Store(settings.database_uri)
        self._ids = Ids(settings.seed)
        self._demo = 0
        self._serializer = _login_serializer(settings.webhook_secret, self._clock)

    def __repr__(self) -> str:
        return f"SandboxBackend(database_uri={self.settings.shown_database_uri!r}, seed={self.settings.seed!r})"

    @property
    def rates(self) -> Mapping[str, Decimal]:
        """The exchange rates in force (USD per one major unit): the configured ones, changes stored over them."""
        return self._run(lambda ctx: dict(ctx.rates), test_mode=True)

    # -- plumbing -----------------------------------------------------------------------------

    def _run(self, work: Callable[[Ctx], T], *, test_mode: bool = False) -> T:
        """Run ``work`` in one locked transaction: commit, or roll back on error or in test mode."""
        with self._lock:
            session = self._store.session()
            try:
                ctx = Ctx(session=session, settings=self.settings, ids=self._ids, now=self._clock())
                result = work(ctx)
                if test_mode:
                    session.rollback()
                else:
                    session.commit()
                return result
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    def reset(self) -> None:
        """Drop all state and rates changes; ids restart from the seed."""
        with self._lock:
            self._store.rebuild()
            self._demo = 0

    def close(self) -> None:
        """Dispose of the database engine."""
        with self._lock:
            self._store.close()

    # -- the API endpoints --------------------------------------------------------------------

    def user_sync(self, payload: Mapping[str, Any], *, test_mode: bool = False) -> Outcome:
        """``POST /user-sync`` (single or bulk by body shape); 200."""
        body = self._run(lambda ctx: user_sync(ctx, _payload(payload)), test_mode=test_mode)
        return Outcome(200, body)

    def transaction(self, payload: Mapping[str, Any], *, idempotency_key: Optional[str] = None,
                    test_mode: bool = False) -> Outcome:
        """``POST /transaction``: 201 with commissions, 200 FAILED on a conversion mismatch, or a replay."""
        return self._run(lambda ctx: record_transaction(ctx, _payload(payload), idempotency_key=idempotency_key,
                                                        test_mode=test_mode), test_mode=test_mode)

    def validate_voucher(self, payload: Mapping[str, Any], *, test_mode: bool = False) -> Outcome:
        """``POST /voucher/validate``: 200 with no body when valid (as HAVN answers), else 400/404/422."""
        self._run(lambda ctx: validate_voucher(ctx, _payload(payload)), test_mode=test_mode)
        return Outcome(200, None)

    def list_vouchers(self, params: Mapping[str, str], *, test_mode: bool = False) -> Outcome:
        """``GET /vouchers``: the §4.3 shape."""
        return Outcome(200, self._run(lambda ctx: list_vouchers(ctx, params), test_mode=test_mode))

    def login(self, payload: Mapping[str, Any], *, frontend_url: str, test_mode: bool = False) -> Outcome:
        """``POST /login``: a single-use token and ``{frontend_url}/login?token=…`` (not stored in test mode)."""

        def work(ctx: Ctx) -> Dict[str, Any]:
            email = _payload(payload).get("email")
            if not isinstance(email, str) or "@" not in email.strip():
                raise bad_request("email must be the user's email address", field="email")
            user = find_user(ctx, email)
            if user is None:
                raise not_found(f"no HAVN user has the email {email.strip().lower()}; sync the user first",
                                field="email")
            if not user.is_active:
                raise bad_request(f"user {user.email} is inactive in HAVN and cannot log in; reactivate the user",
                                  field="email")
            seq, _ = ctx.new_id("tok", LoginTokenRow)
            jti = ctx.ids.hex("tok", seq, 32)
            ctx.session.add(LoginTokenRow(seq=seq, jti=jti, user_id=user.id, used=False, created_at=ctx.stamp))
            ctx.session.flush()
            token = self._serializer.dumps({"uid": user.id, "jti": jti})
            return {
                "success": True,
                "data": {"redirect_url": f"{frontend_url.rstrip('/')}/login?token={token}", "token": token,
                         "expires_in": self.settings.login_token_ttl},
                "message": "Login successful - redirect user to provided URL",
            }

        return Outcome(200, self._run(work, test_mode=test_mode))

    def redeem_login(self, token: str) -> Outcome:
        """``GET {frontend_url}/login?token=…``: 200 once per token; expired, forged or reused → 400."""

        def work(ctx: Ctx) -> Dict[str, Any]:
            try:
                data = self._serializer.loads(token, max_age=self.settings.login_token_ttl)
            except SignatureExpired:
                raise bad_request("login token expired; ask HAVN for a new login link", field="token") from None
            except BadData:
                raise bad_request("login token is not valid; ask HAVN for a new login link", field="token") from None
            row = None
            if isinstance(data, dict) and isinstance(data.get("jti"), str):
                row = ctx.session.scalar(select(LoginTokenRow).where(LoginTokenRow.jti == data["jti"]))
            if row is None:
                raise bad_request("login token is unknown (test-mode tokens are not stored); ask for a new one",
                                  field="token")
            if row.used:
                raise bad_request("login token was already used; each token works once, ask for a new one",
                                  field="token")
            user = ctx.session.scalar(select(UserRow).where(UserRow.id == row.user_id))
            if user is None or not user.is_active:
                raise bad_request("the user of this login token is gone or inactive", field="token")
            row.used = True
            return {"success": True, "message": "Login token accepted", "user": user_dict(user)}

        if not isinstance(token, str) or not token:
            raise bad_request("token is required", field="token")
        return Outcome(200, self._run(work))

    def public_link(self, ref: str, voucher: Optional[str]) -> Dict[str, Optional[str]]:
        """``GET /r/<slug>?ref=&vc=`` (contract §8): the code and the voucher to pass on, or 404.

        An unknown referral code is 404; a voucher HAVN knows but that cannot
        be used now (expired, used up, inactive) is dropped, and the visitor
        still goes on; any other ``vc`` (a local voucher) passes through.
        Reads only.
        """

        def work(ctx: Ctx) -> Dict[str, Optional[str]]:
            associate = find_associate(ctx, ref.strip().upper())
            if associate is None or not associate.is_active:
                raise not_found(f"referral code {ref.strip()[:60]!r} is not known; check the link", field="ref")
            kept = voucher.strip() if voucher and voucher.strip() else None
            row = find_voucher(ctx, kept) if kept is not None else None
            if row is not None and voucher_problem(ctx, row) is not None:
                kept = None
            return {"ref": associate.referral_code, "vc": kept}

        return self._run(work, test_mode=True)

    # -- control ------------------------------------------------------------------------------

    def seed(self, spec: Mapping[str, Any]) -> dict:
        """Seed associates (in order, so hierarchies build), users, vouchers and rates; all or nothing."""
        return self._run(lambda ctx: seed(ctx, spec))

    def set_rates(self, rates: Mapping[str, Any]) -> dict:
        """Change some exchange rates (decimal strings, USD per major unit); returns all rates."""
        parsed = checked_rates(rates)

        def work(ctx: Ctx) -> dict:
            store_rates(ctx, parsed)
            return {"rates": {code: format(rate, "f") for code, rate in sorted(ctx.rates.items())}}

        return self._run(work)

    def build_event(self, event_type: str, *, transaction_id: Optional[str] = None,
                    overrides: Optional[Mapping[str, Any]] = None) -> Event:
        """A realistic event: from a stored transaction, or invented; ``overrides`` deep-merged into data."""
        if overrides is not None and not isinstance(overrides, Mapping):
            raise bad_request("overrides must be an object merged into the event data", field="overrides")
        with self._lock:
            self._demo += 1
            demo = self._demo
            data = self._run(lambda ctx: build_event_data(ctx, event_type, transaction_id, demo), test_mode=True)
        data = dict(deep_merge(dict(data), dict(overrides or {})))
        return Event(event_type, dict(data))

    def dump(self) -> dict:
        """Users, associates and their tree, transactions, commissions, vouchers, tokens, rates, counts."""
        return self._run(dump, test_mode=True)

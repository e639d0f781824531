"""Every ``HAVN_*`` configuration key of the extension, with its default.

Keys are read once, at ``init_app``, in one precedence where what the host
wrote in code wins over the shell: ``app.config`` first, then the options
passed to ``HAVN(…)`` / ``init_app(…)``, then the process environment
(``HAVN_API_KEY=… flask run`` works), then the defaults below. Every value is
checked for type and range there (``HAVN_MAX_RETRIES = 2.5`` or
``HAVN_BULK_MAX_SIZE = 100`` is a :class:`HAVNConfigError` at start-up, not a
surprise later), and an ``app.config`` key that starts with ``HAVN_`` but is
not one of ours (a typo) gets a :class:`HAVNConfigWarning`. Later changes to
``app.config`` are not seen.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import MISSING, dataclass, field, fields
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .rules import MAX_BULK_SIZE
from .currency import parse_rate_table
from .transport import DEFAULT_MAX_TOTAL_WAIT, max_call_seconds
from .errors import HAVNConfigError

__all__ = ["HAVNConfig", "HAVNConfigWarning", "DEFAULTS", "SANDBOX_API_KEY", "SANDBOX_WEBHOOK_SECRET", "SANDBOX_BASE_URL"]

#: Where every key is documented (named by the errors and warnings about an unknown one).
CONFIGURATION_DOCS = "https://flask-havn.readthedocs.io/en/latest/configuration.html"

#: Development credentials of the embedded sandbox (public on purpose: never use them for real).
SANDBOX_API_KEY = "sandbox-api-key"
SANDBOX_WEBHOOK_SECRET = "sandbox-webhook-secret"
#: Base URL the embedded sandbox answers on, in-process (never resolved by DNS).
SANDBOX_BASE_URL = "http://havn-sandbox.invalid"
#: ``HAVN_DELIVERY`` values that deliver through a task queue (see :mod:`flask_havn.queues`).
QUEUED = ("celery", "rq")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean")


class HAVNConfigWarning(UserWarning):
    """A ``HAVN_*`` setting looks wrong but does not stop the app (e.g. an unknown key: a typo?)."""


def _strict_int(value: Any) -> int:
    """An integer, or a string of one: ``2.5``, ``"2.5"``, ``True`` are refused, not truncated."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    raise ValueError("must be a whole number")


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = _strict_int(value)
        if not low <= number <= high:
            raise ValueError(f"must be from {low} to {high}")
        return number
    return parse


def _float_range(low: float, high: float, *, low_open: bool = False) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("must be a number, not a boolean")
        number = float(value)
        if not (low < number if low_open else low <= number) or not number <= high:
            raise ValueError(f"must be {'more than' if low_open else 'from'} {low:g} {'and at most' if low_open else 'to'} "
                             f"{high:g}")
        return number
    return parse


def _optional_str(value: Any) -> Optional[str]:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _prefix(value: Any) -> str:
    text = "/" + str(value).strip().strip("/")
    return "" if text == "/" else text


def _url(value: Any) -> str:
    return str(value).strip().rstrip("/")


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"choose one of {', '.join(allowed)}")
        return text
    return parse


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``parse``, letting ``None`` (or an empty string, from the environment) through as ``None``."""
    def parse_optional(value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return parse(value)
    return parse_optional


_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def _queue_name(value: Any) -> str:
    text = str(value).strip()
    if not _QUEUE_NAME.match(text):
        raise ValueError("must be 1 to 100 letters, digits or _ . : -")
    return text


def _redis_url(value: Any) -> str:
    text = str(value).strip()
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return text


def _rate_table(value: Any) -> Mapping[str, Decimal]:
    return MappingProxyType(parse_rate_table(value))


def _no_rates() -> Mapping[str, Decimal]:
    return MappingProxyType({})


def _name(value: Any, what: str) -> str:
    """A query parameter or cookie name: letters, digits, ``_`` and ``-`` (1 to 64)."""
    text = str(value).strip()
    if not (1 <= len(text) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in text)):
        raise ValueError(f"must be {what} (letters, digits, _ and -)")
    return text


def _secrets(value: Any) -> Tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


@dataclass(frozen=True)
class HAVNConfig:
    """The extension's settings for one app, read once at ``init_app``."""

    #: ``HAVN_API_KEY`` — sent as ``X-API-Key``. Required unless the sandbox is on.
    api_key: Optional[str] = field(default=None, repr=False)
    #: ``HAVN_WEBHOOK_SECRET`` — HMAC key of ``X-Signature`` and of inbound events.
    webhook_secret: Optional[str] = field(default=None, repr=False)
    #: ``HAVN_BASE_URL`` — where HAVN's API lives.
    base_url: str = "https://api.havn.com"
    #: ``HAVN_TIMEOUT`` — seconds one attempt may take in all (connect, send, the whole answer).
    timeout: float = 30.0
    #: ``HAVN_MAX_RETRIES`` — retries after the first attempt (connection errors, 429, 5xx).
    max_retries: int = 3
    #: ``HAVN_BACKOFF_FACTOR`` — base of the exponential backoff, in seconds.
    backoff_factor: float = 0.5
    #: ``HAVN_TEST_MODE`` — send ``X-Test-Mode: true``: HAVN validates but persists nothing.
    test_mode: bool = False
    #: ``HAVN_PAYMENT_GATEWAY`` — gateway label sent when a payment names none.
    payment_gateway: str = "MANUAL"
    #: ``HAVN_BULK_MAX_SIZE`` — users per bulk user-sync request.
    bulk_max_size: int = 50
    #: ``HAVN_URL_PREFIX`` — where the blueprint's routes are mounted.
    url_prefix: str = "/havn"
    #: ``HAVN_SANDBOX`` — talk to an embedded, in-process HAVN sandbox instead of HAVN.
    sandbox: bool = False
    #: ``HAVN_DELIVERY`` — ``"inline"`` (send right after the payment commits), ``"worker"``
    #: (only ``flask havn deliver`` sends), or ``"celery"`` / ``"rq"`` (a task on the host's queue,
    #: enqueued after the commit; see :mod:`flask_havn.queues`).
    delivery: str = "inline"
    #: ``HAVN_DELIVERY_MAX_ATTEMPTS`` — delivery attempts of one payment before it is ``dead``.
    delivery_max_attempts: int = 8
    #: ``HAVN_DELIVERY_BACKOFF`` — seconds before the first re-attempt; doubles each time.
    delivery_backoff: float = 30.0
    #: ``HAVN_DELIVERY_MAX_BACKOFF`` — longest wait between two attempts, in seconds.
    delivery_max_backoff: float = 6 * 3600.0
    #: ``HAVN_DELIVERY_LEASE`` — seconds a ``sending`` payment stays with the worker that claimed it
    #: before it counts as abandoned (a crashed worker); ``None``: derived from the timeout and retries.
    delivery_lease: Optional[float] = None
    #: ``HAVN_QUEUE_NAME`` — the Celery or RQ queue the delivery tasks go to.
    queue_name: str = "havn"
    #: ``HAVN_RQ_URL`` — the Redis holding the RQ queue (``HAVN_DELIVERY = "rq"``); may carry a password.
    rq_url: str = field(default="redis://localhost:6379/0", repr=False)
    #: ``HAVN_QUEUE_SWEEP_GRACE`` — seconds a payment must have been due, untouched, before the queue's
    #: periodic sweep enqueues it again (its task was lost).
    queue_sweep_grace: float = 300.0
    #: ``HAVN_WEBHOOK_PATH`` — path of the inbound webhook endpoint, under ``HAVN_URL_PREFIX``.
    webhook_path: str = "/webhooks"
    #: ``HAVN_WEBHOOK_SECRETS`` — extra secrets accepted on inbound events (rotation).
    webhook_secrets: Tuple[str, ...] = field(default=(), repr=False)
    #: ``HAVN_WEBHOOK_TOLERANCE`` — seconds an event's timestamp may be off, either way.
    webhook_tolerance: int = 300
    #: ``HAVN_WEBHOOK_MAX_BYTES`` — largest inbound event body accepted (else 413).
    webhook_max_bytes: int = 256 * 1024
    #: ``HAVN_CURRENCY_CONVERSION`` — ``"server"`` (send the original amount with
    #: ``server_side_conversion``; HAVN converts) or ``"client"`` (convert to USD cents here with
    #: ``HAVN_EXCHANGE_RATES`` or ``@havn.rate_provider`` and send the audit in ``custom_fields``).
    currency_conversion: str = "server"
    #: ``HAVN_EXCHANGE_RATES`` — client mode's rates: currency → USD per ONE MAJOR UNIT, as decimal
    #: strings or ``Decimal`` (``{"IDR": "0.0000633"}``; floats are refused).
    exchange_rates: Mapping[str, Decimal] = field(default_factory=_no_rates, hash=False)
    # -- public referral links (see flask_havn.referrals) --
    #: ``HAVN_CAPTURE_REFERRALS`` — keep ``?ref=&vc=`` of any GET in a signed first-party cookie.
    capture_referrals: bool = False
    #: ``HAVN_REFERRAL_MAX_AGE`` — seconds a captured referral stays valid (the attribution window).
    referral_max_age: int = 30 * 86400
    #: ``HAVN_REFERRAL_POLICY`` — ``"last"`` (a newer link replaces the captured one) or ``"first"``.
    referral_policy: str = "last"
    #: ``HAVN_REFERRAL_CODE_PARAM`` — the query parameter carrying the referral code.
    referral_code_param: str = "ref"
    #: ``HAVN_REFERRAL_VOUCHER_PARAM`` — the query parameter carrying the voucher.
    referral_voucher_param: str = "vc"
    #: ``HAVN_REFERRAL_COOKIE`` — the cookie's name.
    referral_cookie: str = "havn_referral"
    #: ``HAVN_REFERRAL_SECRET`` — the cookie's signing key (default: the app's ``SECRET_KEY``).
    referral_secret: Optional[str] = field(default=None, repr=False)

    @classmethod
    def from_app_config(
        cls, config: Mapping[str, Any], options: Optional[Mapping[str, Any]] = None,
        environ: Optional[Mapping[str, str]] = None,
    ) -> "HAVNConfig":
        """Resolve every key from ``config``, then ``options``, then ``environ``, then the defaults."""
        env = os.environ if environ is None else environ
        opts = dict(options or {})
        values: Dict[str, Any] = {}
        sources: Dict[str, str] = {}
        for f in fields(cls):
            key = "HAVN_" + f.name.upper()
            if key in config:
                raw, sources[f.name] = config[key], "app.config"
            elif f.name in opts:
                raw, sources[f.name] = opts[f.name], "the HAVN(...) options"
            elif key in env:
                raw, sources[f.name] = env[key], "the environment"
            else:
                continue
            opts.pop(f.name, None)
            try:
                values[f.name] = _PARSERS[f.name](raw)
            except (TypeError, ValueError) as exc:
                shown = "<hidden>" if f.name in _SECRET_FIELDS else repr(raw)
                raise HAVNConfigError(f"{key} = {shown} is invalid ({exc}); fix it in app.config or the environment") from None
        if opts:
            raise HAVNConfigError(f"unknown HAVN option(s): {', '.join(sorted(opts))}; every option is listed at "
                                  f"{CONFIGURATION_DOCS}")
        _warn_unknown_keys(config)
        _refuse_a_base_url_the_sandbox_hides(values, sources)
        _check_lease(values)
        return cls(**values)

    @property
    def inbound_secrets(self) -> Tuple[str, ...]:
        """Every secret an inbound event may be signed with (rotation: any one matches)."""
        first = (self.webhook_secret,) if self.webhook_secret else ()
        return first + tuple(s for s in self.webhook_secrets if s != self.webhook_secret)

    def require_credentials(self) -> None:
        """Raise naming the first missing credential (unless the sandbox is on)."""
        if self.sandbox:
            return
        for key, value in (("HAVN_API_KEY", self.api_key), ("HAVN_WEBHOOK_SECRET", self.webhook_secret)):
            if not value:
                raise HAVNConfigError(
                    f"{key} is not set. Set app.config[{key!r}] or the {key} environment variable, "
                    "or set HAVN_SANDBOX = True to use the embedded sandbox."
                )


_SECRET_FIELDS = ("api_key", "webhook_secret", "webhook_secrets", "referral_secret", "rq_url")

_PARSERS: Dict[str, Callable[[Any], Any]] = {
    "api_key": _optional_str,
    "webhook_secret": _optional_str,
    "base_url": _url,
    "timeout": _float_range(0.0, 3600.0, low_open=True),
    "max_retries": _int_range(0, 10),
    "backoff_factor": _float_range(0.0, 60.0),
    "test_mode": _bool,
    "payment_gateway": lambda v: str(v).strip().upper(),
    "bulk_max_size": _int_range(1, MAX_BULK_SIZE),
    "url_prefix": _prefix,
    "sandbox": _bool,
    "delivery": _choice("inline", "worker", *QUEUED),
    "delivery_max_attempts": _int_range(1, 1000),
    "delivery_backoff": _float_range(0.0, 30 * 86400.0),
    "delivery_max_backoff": _float_range(0.0, 30 * 86400.0),
    "delivery_lease": _optional(_float_range(1.0, 86400.0)),
    "queue_name": _queue_name,
    "rq_url": _redis_url,
    "queue_sweep_grace": _float_range(0.0, 30 * 86400.0),
    "webhook_path": _prefix,
    "webhook_secrets": _secrets,
    "webhook_tolerance": _int_range(1, 86400),
    "webhook_max_bytes": _int_range(1024, 64 * 1024 * 1024),
    "currency_conversion": _choice("server", "client"),
    "exchange_rates": _rate_table,
    "capture_referrals": _bool,
    "referral_max_age": _int_range(60, 400 * 86400),
    "referral_policy": _choice("first", "last"),
    "referral_code_param": lambda v: _name(v, "a query parameter name such as ref"),
    "referral_voucher_param": lambda v: _name(v, "a query parameter name such as vc"),
    "referral_cookie": lambda v: _name(v, "a cookie name such as havn_referral"),
    "referral_secret": _optional_str,
}

#: Default of every key, by its ``HAVN_*`` name (for docs and ``app.config.setdefault``).
def _default(f: Any) -> Any:
    """A field's default as plain data (a default factory's mapping becomes a dict)."""
    return f.default if f.default is not MISSING else dict(f.default_factory())


DEFAULTS: Dict[str, Any] = {"HAVN_" + f.name.upper(): _default(f) for f in fields(HAVNConfig)}
_FIELD_DEFAULTS: Dict[str, Any] = {f.name: _default(f) for f in fields(HAVNConfig)}


def _refuse_a_base_url_the_sandbox_hides(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """``HAVN_SANDBOX`` on with a ``HAVN_BASE_URL`` of one's own is a mistake: say so instead of ignoring the URL.

    The embedded sandbox answers in-process, so the URL would silently lose and
    the app would talk to an empty sandbox of its own (a test pointed at the
    ``havn_sandbox`` fixture would read nothing). The embedded sandbox's own
    URL, which ``init_app`` writes back into ``app.config``, is not a conflict.
    """
    url = values.get("base_url")
    if not values.get("sandbox") or url is None or url == SANDBOX_BASE_URL:
        return
    raise HAVNConfigError(
        f"HAVN_SANDBOX is on (from {sources['sandbox']}), so the app would talk to its embedded, in-process "
        f"sandbox and ignore HAVN_BASE_URL = {url!r} (from {sources['base_url']}). To talk to the server at that "
        "URL (HAVN, or a sandbox such as the havn_sandbox test fixture), set HAVN_SANDBOX = False and give its "
        "HAVN_API_KEY and HAVN_WEBHOOK_SECRET; to use the embedded sandbox, remove HAVN_BASE_URL.")


#: ``HAVN_*`` keys that belong to others: the embedded sandbox's own settings, and the test suite's.
_FOREIGN_PREFIXES = ("HAVN_SANDBOX_", "HAVN_TEST_")


def _check_lease(values: Mapping[str, Any]) -> None:
    """Refuse a ``HAVN_DELIVERY_LEASE`` shorter than one delivery's HTTP call can last.

    A worker still waiting for HAVN would lose its claim, and another would
    send the same payment again (HAVN's idempotency keeps it to one
    transaction, but the lease is there to avoid that). The bound is
    :func:`flask_havn.transport.max_call_seconds`; without retries there is
    no wait between attempts.
    """
    lease = values.get("delivery_lease")
    if lease is None:
        return
    timeout = values.get("timeout", _FIELD_DEFAULTS["timeout"])
    retries = values.get("max_retries", _FIELD_DEFAULTS["max_retries"])
    one_call = max_call_seconds(timeout, retries, DEFAULT_MAX_TOTAL_WAIT if retries else 0.0)
    if lease < one_call:
        raise HAVNConfigError(
            f"HAVN_DELIVERY_LEASE = {lease:g} is shorter than one delivery's HTTP call can last ({one_call:g} s with "
            "HAVN_TIMEOUT and HAVN_MAX_RETRIES): a worker still waiting for HAVN would lose its claim. Raise "
            "HAVN_DELIVERY_LEASE, or lower HAVN_TIMEOUT or HAVN_MAX_RETRIES")


def _warn_unknown_keys(config: Mapping[str, Any]) -> None:
    """Warn once per ``app.config`` key that looks like ours but is not (a typo keeps its default)."""
    known = set(DEFAULTS)
    for key in config:
        if (isinstance(key, str) and key.startswith("HAVN_") and key not in known
                and not key.startswith(_FOREIGN_PREFIXES)):
            warnings.warn(f"app.config[{key!r}] is not a flask_havn setting and is ignored; check the spelling "
                          f"against {CONFIGURATION_DOCS}", HAVNConfigWarning, stacklevel=4)

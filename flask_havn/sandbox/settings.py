"""The sandbox's settings: credentials, storage, commission levels, rates and limits.

Read once from a ``HAVN_*`` mapping (:meth:`SandboxSettings.from_mapping`);
bad values raise :class:`flask_havn.errors.HAVNConfigError` naming the key and
the fix. No Flask here.

Every setting also takes a string, so it can come from the environment:
exchange rates as ``HAVN_EXCHANGE_RATES`` takes them (a JSON object or
``"IDR=0.0000633,EUR=1.08"``), rate limits and faults as a JSON object
(``'{"login": 5}'``, ``'{"rates": {"500": 0.1}}'``), commission levels as
``"5,3,2,1,1"``, numbers as digits.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Callable, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from .. import config
from ..currency import parse_rate_table
from ..errors import HAVNConfigError
from .hosts import hostname

__all__ = [
    "DEFAULT_EXCHANGE_RATES",
    "DEFAULT_COMMISSION_LEVELS",
    "DEFAULT_RATE_LIMITS",
    "RATE_LIMITED_ENDPOINTS",
    "SandboxSettings",
    "environ_config",
    "hide_password",
    "public_slug",
    "redirect_url",
    "ENVIRON_PREFIX",
]

#: Prefix of the sandbox's own keys, the ones an embedding app or a command takes from the environment.
ENVIRON_PREFIX = "HAVN_SANDBOX_"

#: USD value of ONE MAJOR UNIT of each accepted currency (decimal strings; late-2026-ish values).
DEFAULT_EXCHANGE_RATES: Dict[str, str] = {
    "USD": "1",
    "EUR": "1.08",
    "GBP": "1.27",
    "JPY": "0.0067",
    "CNY": "0.138",
    "AUD": "0.66",
    "CAD": "0.73",
    "CHF": "1.13",
    "HKD": "0.128",
    "SGD": "0.75",
    "SEK": "0.095",
    "NOK": "0.093",
    "DKK": "0.145",
    "INR": "0.0119",
    "IDR": "0.0000633",
    "MYR": "0.225",
    "PHP": "0.0172",
    "THB": "0.029",
    "VND": "0.0000395",
    "KRW": "0.00072",
    "TWD": "0.031",
    "BRL": "0.18",
    "MXN": "0.054",
    "ZAR": "0.055",
    "TRY": "0.024",
    "RUB": "0.011",
    # Not in HAVN's SDK whitelist, but in its minor-unit table (flask_havn accepts them).
    "BHD": "2.65",
    "JOD": "1.41",
    "KWD": "3.25",
    "OMR": "2.6",
    "TND": "0.32",
    "CLP": "0.00105",
    "ISK": "0.0072",
}

#: Percent paid per level (L1 = owner of the referral code), as HAVN documents.
DEFAULT_COMMISSION_LEVELS = ("5", "3", "2", "1", "1")

#: The endpoints that have their own rate limit.
RATE_LIMITED_ENDPOINTS = ("transaction", "user_sync", "voucher_validate", "vouchers", "login")

#: Requests per minute by endpoint name (login is HAVN's documented 20/min).
DEFAULT_RATE_LIMITS: Dict[str, int] = {
    "transaction": 120,
    "user_sync": 60,
    "voucher_validate": 120,
    "vouchers": 60,
    "login": 20,
}

_MAX_LEVELS = 20


def hide_password(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part (if any) shown as ``***``."""
    return re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", url)


# -- parsers: each takes a raw value and returns the normalised one or raises ValueError ----------


def _secret(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _optional_str(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string or None")
    return value.strip() or None


def _database_uri(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError('must be an SQLAlchemy URL such as "sqlite://" or "sqlite:////tmp/havn.db"')
    return value.strip()


def _http_url(value: Any, what: str, *, query: bool = False) -> Optional[str]:
    """An absolute http(s) URL without fragment (and without query unless ``query``); ``None`` stays ``None``."""
    text = _optional_str(value)
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or (parts.query and not query) or parts.fragment:
        raise ValueError(f"must be the absolute http(s) URL {what}")
    return text


def _public_url(value: Any) -> Optional[str]:
    text = _http_url(value, 'the sandbox is reached at, e.g. "http://127.0.0.1:8765"')
    return None if text is None else text.rstrip("/")


def _hosts(value: Any) -> Tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (Mapping, bytes)) or not hasattr(items, "__iter__"):
        raise ValueError('give host names, as a list or comma-separated: "havn-sandbox, sandbox.test"')
    names = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not a host name")
        if not item.strip():
            continue
        try:  # a bare address ("::1" is no "host:port")
            name: Optional[str] = str(ipaddress.ip_address(item.strip().strip("[]")))
        except ValueError:
            name = hostname(item)
        if name is None or name == "*":
            raise ValueError(f"{item.strip()!r} is not a host name (no wildcards)")
        names.append(name)
    return tuple(names)


def _percent(raw: Any) -> Decimal:
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a percentage")
    try:
        value = Decimal(str(raw).strip()) if isinstance(raw, (str, int, float, Decimal)) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value < 0 or value > 100:
        raise ValueError(f"{raw!r} is not a percentage between 0 and 100")
    return value


def _commission_levels(value: Any) -> Tuple[Decimal, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (Mapping, bytes)) or not hasattr(items, "__iter__"):
        raise ValueError('give a list of percentages or a string such as "5,3,2,1,1"')
    levels = tuple(_percent(item) for item in items)
    if not 1 <= len(levels) <= _MAX_LEVELS:
        raise ValueError(f"give between 1 and {_MAX_LEVELS} levels")
    if sum(levels) > 100:
        raise ValueError("the levels add up to more than 100 percent")
    return levels


def _rates(value: Any) -> Mapping[str, Decimal]:
    merged: Dict[str, Decimal] = {code: Decimal(rate) for code, rate in DEFAULT_EXCHANGE_RATES.items()}
    merged.update(parse_rate_table(value))
    return MappingProxyType(merged)


def _json_object(value: Any, example: str) -> Any:
    """A mapping as given, or the JSON object a string holds (the environment's form)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"is not a JSON object such as {example}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"give a dict or a JSON object string such as {example}")
    return value


def _limits(value: Any) -> Mapping[str, int]:
    merged = dict(DEFAULT_RATE_LIMITS)
    for name, raw in _json_object(value, '{"login": 20}').items():
        if name not in RATE_LIMITED_ENDPOINTS:
            raise ValueError(f"{name!r} is not one of {', '.join(RATE_LIMITED_ENDPOINTS)}")
        merged[name] = _positive_int(raw)
    return MappingProxyType(merged)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"{value!r} is not a whole number")
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _optional_int(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, (bool, float)):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def _factor(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError("must be a finite number, 0 or more (0.001 compresses the schedule 1000x)")
    return number


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number of seconds")
    number = float(value)
    if not 0 <= number < float("inf"):
        raise ValueError("must be a finite number of seconds, 0 or more")
    return number


def public_slug(value: Any) -> str:
    """A public link slug: lower-case letters, digits and ``-``, 1 to 63 (``mycompany``)."""
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", value.strip()):
        raise ValueError('must be a slug of lower-case letters, digits and "-", such as "mycompany"')
    return value.strip()


def redirect_url(value: Any) -> Optional[str]:
    """The SaaS's login page: an absolute http(s) URL without fragment (``None``: not configured)."""
    return _http_url(value, 'of the login page, e.g. "https://app.example/login"', query=True)


def _faults(value: Any) -> Optional[Mapping[str, Any]]:
    if value is None:
        return None
    return MappingProxyType(dict(_json_object(value, '{"rates": {"500": 0.1}} (see flask_havn.sandbox.faults)')))


@dataclass(frozen=True)
class SandboxSettings:
    """Everything the sandbox backend and its HTTP layer are configured with."""

    api_key: str = field(default=config.SANDBOX_API_KEY, repr=False)
    webhook_secret: str = field(default=config.SANDBOX_WEBHOOK_SECRET, repr=False)
    #: SQLAlchemy URL; in-memory SQLite by default, a file URL keeps state across restarts.
    database_uri: str = "sqlite://"
    #: Where the sandbox POSTs its events (``None``: events are not delivered).
    webhook_url: Optional[str] = None
    #: Percent per level, L1 first.
    commission_levels: Tuple[Decimal, ...] = tuple(Decimal(p) for p in DEFAULT_COMMISSION_LEVELS)
    #: USD per one major unit, for every supported currency.
    exchange_rates: Mapping[str, Decimal] = field(
        default_factory=lambda: MappingProxyType({k: Decimal(v) for k, v in DEFAULT_EXCHANGE_RATES.items()})
    )
    #: Requests per minute by endpoint name.
    rate_limits: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(dict(DEFAULT_RATE_LIMITS)))
    #: Most users in one bulk user-sync request.
    bulk_max_size: int = 50
    #: Seed of id generation: the same seed and calls give the same ids and responses.
    seed: Optional[int] = None
    #: Multiplies the webhook retry schedule (0.001 makes hours into seconds for tests).
    delivery_schedule_factor: float = 1.0
    #: Initial fault spec (see ``faults.py``).
    faults: Optional[Mapping[str, Any]] = None
    #: Seconds a login token stays redeemable.
    login_token_ttl: int = 300
    #: The URL the sandbox's own links use (login ``redirect_url``); ``None``: the in-process
    #: address, or the server's own ``http://127.0.0.1:<port>`` once it serves over HTTP.
    public_url: Optional[str] = None
    #: Host names answered besides loopback ones and the public URL's (DNS-rebinding guard).
    allowed_hosts: Tuple[str, ...] = ()
    #: Seconds the sandbox, when it closes (at the latest at process exit), spends delivering queued events.
    drain_timeout: float = 10.0
    #: The company's public link slug: ``GET /r/<slug>?ref=&vc=`` (contract §8).
    public_redirect_slug: str = "sandbox"
    #: Where ``/r/<slug>`` sends visitors: the SaaS's login page (``None``: the link answers 404).
    public_auth_redirect_url: Optional[str] = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={self._shown(f.name)!r}" for f in fields(self) if f.name not in _SECRET_FIELDS)
        return f"SandboxSettings({shown})"

    def _shown(self, name: str) -> Any:
        value = getattr(self, name)
        return hide_password(value) if name in _URL_FIELDS and isinstance(value, str) else value

    @property
    def shown_database_uri(self) -> str:
        """The database URI with any password hidden (for banners and messages)."""
        return hide_password(self.database_uri)

    def __post_init__(self) -> None:
        for f in fields(self):
            try:
                value = _PARSERS[f.name](getattr(self, f.name))
            except (TypeError, ValueError) as exc:
                shown = "<hidden>" if f.name in _SECRET_FIELDS else repr(getattr(self, f.name))
                raise HAVNConfigError(f"SandboxSettings.{f.name} = {shown} is invalid ({exc})") from None
            object.__setattr__(self, f.name, value)

    @classmethod
    def from_mapping(cls, config: Optional[Mapping[str, Any]] = None) -> "SandboxSettings":
        """Build settings from ``HAVN_*`` keys (an app config); absent or ``None`` keys keep defaults."""
        config = config or {}
        values: Dict[str, Any] = {}
        for name, key in _KEYS.items():
            raw = config.get(key)
            if raw is None or (name in _SECRET_FIELDS and isinstance(raw, str) and not raw.strip()):
                continue
            try:
                values[name] = _PARSERS[name](raw)
            except (TypeError, ValueError) as exc:
                shown = "<hidden>" if name in _SECRET_FIELDS else repr(raw)
                raise HAVNConfigError(f"{key} = {shown} is invalid ({exc}); fix it in the sandbox config") from None
        return cls(**values)


_SECRET_FIELDS = ("api_key", "webhook_secret")
#: URLs that may carry a ``user:password@`` part: shown with the password hidden.
_URL_FIELDS = ("database_uri", "webhook_url", "public_url")

_PARSERS: Dict[str, Callable[[Any], Any]] = {
    "api_key": _secret,
    "webhook_secret": _secret,
    "database_uri": _database_uri,
    "webhook_url": _optional_str,
    "commission_levels": _commission_levels,
    "exchange_rates": _rates,
    "rate_limits": _limits,
    "bulk_max_size": _positive_int,
    "seed": _optional_int,
    "delivery_schedule_factor": _factor,
    "faults": _faults,
    "login_token_ttl": _positive_int,
    "public_url": _public_url,
    "allowed_hosts": _hosts,
    "drain_timeout": _seconds,
    "public_redirect_slug": public_slug,
    "public_auth_redirect_url": redirect_url,
}

#: Settings field -> configuration key.
_KEYS: Dict[str, str] = {
    "api_key": "HAVN_API_KEY",
    "webhook_secret": "HAVN_WEBHOOK_SECRET",
    "database_uri": "HAVN_SANDBOX_DATABASE_URI",
    "webhook_url": "HAVN_SANDBOX_WEBHOOK_URL",
    "commission_levels": "HAVN_SANDBOX_COMMISSION_LEVELS",
    "exchange_rates": "HAVN_SANDBOX_EXCHANGE_RATES",
    "rate_limits": "HAVN_SANDBOX_RATE_LIMITS",
    "bulk_max_size": "HAVN_SANDBOX_BULK_MAX_SIZE",
    "seed": "HAVN_SANDBOX_SEED",
    "delivery_schedule_factor": "HAVN_SANDBOX_DELIVERY_SCHEDULE_FACTOR",
    "faults": "HAVN_SANDBOX_FAULTS",
    "login_token_ttl": "HAVN_SANDBOX_LOGIN_TOKEN_TTL",
    "public_url": "HAVN_SANDBOX_PUBLIC_URL",
    "allowed_hosts": "HAVN_SANDBOX_ALLOWED_HOSTS",
    "drain_timeout": "HAVN_SANDBOX_DRAIN_TIMEOUT",
    "public_redirect_slug": "HAVN_SANDBOX_PUBLIC_REDIRECT_SLUG",
    "public_auth_redirect_url": "HAVN_SANDBOX_PUBLIC_AUTH_REDIRECT_URL",
}


def environ_config(environ: Mapping[str, str]) -> Dict[str, str]:
    """The ``HAVN_SANDBOX_*`` variables of ``environ`` (their string forms are parsed by the settings)."""
    return {key: value for key, value in environ.items() if key.startswith(ENVIRON_PREFIX)}

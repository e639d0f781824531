"""Money arithmetic in integer minor units with ``Decimal`` only; no Flask, no floats.

Shared by the client side (``HAVN_CURRENCY_CONVERSION = "client"``) and the
sandbox, so both convert and round the same way.

Accepted currencies: the 26 of HAVN's SDK whitelist (:data:`HAVN_SDK_CURRENCIES`)
plus the 7 other currencies of HAVN's own minor-unit table (BHD, JOD, KWD,
OMR, TND, CLP, ISK; :data:`EXTRA_CURRENCIES`). HAVN's SDK refuses those 7, so
a real HAVN may refuse them in server mode; client mode always sends USD.

Minor units follow HAVN's table (its SDK's ``utils/currency.py``): IDR, JPY,
KRW, VND, CLP and ISK have 0 decimals (ISO 4217 gives IDR 2, but HAVN's
amounts such as ``150000`` IDR are whole rupiah); BHD, JOD, KWD, OMR and TND
have 3; every other currency has 2.

Rounding rule: ``usd_cents = amount / 10**minor_units × rate × 100``, computed
exactly (no intermediate rounding), then quantized to whole cents with
``ROUND_HALF_UP`` (HAVN's documented helper), once, at the end.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from .errors import HAVNConfigError, HAVNValidationError

__all__ = [
    "MAX_ORIGINAL_AMOUNT",
    "HAVN_SDK_CURRENCIES",
    "EXTRA_CURRENCIES",
    "SUPPORTED_CURRENCIES",
    "AUDIT_KEYS",
    "MAX_CUSTOM_FIELDS",
    "ROUNDING",
    "RateLike",
    "RateProvider",
    "Conversion",
    "minor_units",
    "unsupported",
    "parse_rate",
    "rate_text",
    "to_usd_cents",
    "from_usd_cents",
    "convert_to_usd",
    "with_audit",
    "parse_rate_table",
    "resolve_rate",
    "TABLE_SOURCE",
    "FAILURE_KEYS",
    "failure_details",
]

#: The 26 currencies the official SDK lets through to ``POST /transaction``.
HAVN_SDK_CURRENCIES = frozenset(
    "USD EUR GBP JPY CNY AUD CAD CHF HKD SGD SEK NOK DKK INR IDR MYR PHP THB VND KRW TWD BRL MXN ZAR TRY RUB".split()
)
#: Currencies of HAVN's minor-unit table that its SDK whitelist lacks (HAVN itself may refuse them).
EXTRA_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND", "CLP", "ISK"})
#: Every currency flask_havn accepts: HAVN's 26 plus :data:`EXTRA_CURRENCIES` (33).
SUPPORTED_CURRENCIES = HAVN_SDK_CURRENCIES | EXTRA_CURRENCIES
_ZERO_DECIMALS = frozenset({"IDR", "JPY", "KRW", "VND", "CLP", "ISK"})
_THREE_DECIMALS = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
#: The one rounding mode used wherever money is converted.
ROUNDING = ROUND_HALF_UP
#: Largest original amount (minor units) a client-side conversion takes; HAVN's own cap
#: (1e9) applies to the USD cents that are sent.
MAX_ORIGINAL_AMOUNT = 10 ** 15
_MAX_RATE = Decimal("1e9")
#: Smallest rate accepted (USD per major unit): keeps ``rate_text`` short (≤ 64 characters, the column).
_MIN_RATE = Decimal("1e-12")
#: Most significant digits a rate may have.
_MAX_RATE_DIGITS = 20
#: Longest rate text parsed at all (enough for 20 digits, 11 leading zeros, sign, point and padding).
_MAX_RATE_TEXT = 100
_RATE_RULE = (f"must be a positive decimal number from 1e-12 to 1e9 with at most {_MAX_RATE_DIGITS} "
              "significant digits, e.g. \"0.0000633\"")
#: The audit trail a client-converted transaction carries in ``custom_fields`` (HAVN's guide's names).
AUDIT_KEYS = ("original_currency", "original_amount", "exchange_rate", "original_subtotal")
#: Most entries HAVN accepts in ``custom_fields`` (contract §3).
MAX_CUSTOM_FIELDS = 3

RateLike = Union[str, Decimal, int]
#: ``provider(currency) -> (rate, source)`` or ``None`` (no rate: fall back to ``HAVN_EXCHANGE_RATES``).
RateProvider = Callable[[str], Optional[Tuple[RateLike, str]]]


def unsupported(code: Any, field: str = "currency") -> HAVNValidationError:
    """The error for a currency flask_havn does not accept: names it and lists the accepted ones."""
    return HAVNValidationError(
        field, f"{code!r} is not a currency HAVN accepts; use one of {', '.join(sorted(SUPPORTED_CURRENCIES))}")


def minor_units(currency: str) -> int:
    """Decimal places of ``currency``'s minor unit (0, 2 or 3); an unknown currency raises."""
    if currency not in SUPPORTED_CURRENCIES:
        raise unsupported(currency)
    if currency in _ZERO_DECIMALS:
        return 0
    if currency in _THREE_DECIMALS:
        return 3
    return 2


def parse_rate(rate: RateLike, *, field: str = "exchange_rate") -> Decimal:
    """A rate from 1e-12 to 1e9 with at most 20 significant digits, as ``Decimal``.

    Floats are refused (they are inexact). The bounds keep :func:`rate_text`
    at most 34 characters: ``"1e-999999999"`` would otherwise print a billion.
    Trailing zeros beyond 20 digits are dropped (``"1.000…0"`` is 1).
    """
    if isinstance(rate, (float, bool)) or not isinstance(rate, (str, Decimal, int)):
        raise HAVNValidationError(field, "give the rate as a decimal string or Decimal, not a "
                                  f"{type(rate).__name__} (floats are inexact), e.g. \"0.0000633\"")
    if isinstance(rate, str) and len(rate.strip()) > _MAX_RATE_TEXT:
        raise HAVNValidationError(field, f"is {len(rate.strip())} characters long; it {_RATE_RULE}")
    try:
        value = Decimal(rate.strip() if isinstance(rate, str) else rate)
    except InvalidOperation:
        shown = rate if len(str(rate)) <= 40 else str(rate)[:40] + "…"
        raise HAVNValidationError(field, f"{shown!r} is not a decimal number; write it like \"0.0000633\"") from None
    if not value.is_finite() or not _MIN_RATE <= value <= _MAX_RATE:
        raise HAVNValidationError(field, _RATE_RULE)
    sign, digits, exponent = value.as_tuple()
    if len(digits) > _MAX_RATE_DIGITS:
        kept = len(digits)
        while kept > 1 and digits[kept - 1] == 0:
            kept -= 1
        if kept > _MAX_RATE_DIGITS:
            raise HAVNValidationError(field, f"has {kept} significant digits; it {_RATE_RULE}")
        value = Decimal((sign, digits[:kept], int(exponent) + len(digits) - kept))
    return value


def rate_text(rate: RateLike) -> str:
    """A rate as a plain decimal string (``"0.0000633"``, never ``"6.33E-5"``)."""
    return format(parse_rate(rate), "f")


def _exact_precision(*numbers: Decimal) -> int:
    """Enough significant digits for a product of ``numbers`` (times 100) to be exact."""
    return max(28, sum(len(n.as_tuple().digits) for n in numbers) + 6)


def _integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HAVNValidationError(field, f"must be an integer number of minor units, not {type(value).__name__}")
    return value


def to_usd_cents(amount: int, currency: str, usd_per_unit: RateLike) -> int:
    """Convert ``amount`` minor units of ``currency`` to USD cents: exact, then half-up once."""
    amount = _integer(amount, "amount")
    if currency == "USD":
        return amount
    places = minor_units(currency)
    rate = parse_rate(usd_per_unit)
    with localcontext() as ctx:
        ctx.prec = _exact_precision(Decimal(amount), rate)
        cents = Decimal(amount).scaleb(-places) * rate * 100
        return int(cents.quantize(Decimal(1), rounding=ROUNDING))


def from_usd_cents(cents: int, currency: str, usd_per_unit: RateLike) -> int:
    """Convert USD cents to minor units of ``currency`` (for display; half-up)."""
    cents = _integer(cents, "cents")
    if currency == "USD":
        return cents
    places = minor_units(currency)
    rate = parse_rate(usd_per_unit)
    with localcontext() as ctx:
        ctx.prec = _exact_precision(Decimal(cents), rate) + 20
        major = Decimal(cents).scaleb(-2) / rate
        return int(major.scaleb(places).quantize(Decimal(1), rounding=ROUNDING))


@dataclass(frozen=True)
class Conversion:
    """One client-side conversion to USD cents and the audit trail HAVN gets with it."""

    original_amount: int
    original_currency: str
    #: USD per one major unit of ``original_currency``.
    rate: Decimal
    #: Where the rate came from (``"HAVN_EXCHANGE_RATES"``, or what the host's rate provider said).
    source: str
    amount_usd: int
    original_subtotal: Optional[int] = None
    subtotal_usd: Optional[int] = None

    @property
    def rate_text(self) -> str:
        """The rate as sent to HAVN (plain decimal string)."""
        return format(self.rate, "f")

    def audit_fields(self) -> Dict[str, Any]:
        """``custom_fields`` entries HAVN's guide names: 3, or 4 with a subtotal."""
        fields: Dict[str, Any] = {
            "original_currency": self.original_currency,
            "original_amount": self.original_amount,
            "exchange_rate": self.rate_text,
        }
        if self.original_subtotal is not None:
            fields["original_subtotal"] = self.original_subtotal
        return fields


def _minor_amount(value: Any, field: str) -> int:
    if _integer(value, field) <= 0:
        raise HAVNValidationError(field, "must be greater than 0")
    return value


def convert_to_usd(amount: int, currency: str, rate: RateLike, *, subtotal: Optional[int] = None,
                   source: str = "") -> Conversion:
    """Convert ``amount`` (and ``subtotal``) minor units of ``currency`` to USD cents with ``rate``.

    Pure: the same inputs always give the same :class:`Conversion`. Floats
    (amounts or rate) are refused with :class:`HAVNValidationError`.
    """
    amount = _minor_amount(amount, "amount")
    if subtotal is not None:
        subtotal = _minor_amount(subtotal, "subtotal")
    if not isinstance(currency, str) or currency not in SUPPORTED_CURRENCIES:
        raise unsupported(currency)
    value = parse_rate(rate)
    if currency == "USD" and value != 1:
        raise HAVNValidationError("exchange_rate", "the USD rate is always 1")
    return Conversion(
        original_amount=amount, original_currency=currency, rate=value, source=source,
        amount_usd=to_usd_cents(amount, currency, value),
        original_subtotal=subtotal,
        subtotal_usd=None if subtotal is None else to_usd_cents(subtotal, currency, value),
    )


def with_audit(custom_fields: Optional[Mapping[str, Any]], audit: Mapping[str, Any]) -> Dict[str, Any]:
    """The host's ``custom_fields`` plus the conversion audit, or an error if HAVN would refuse them.

    HAVN keeps at most 3 ``custom_fields`` entries, and the audit alone is 3
    (4 with a subtotal), so the audit is never dropped or truncated: the
    payment is refused *before* anything is sent, with the choice spelled out.
    """
    own = dict(custom_fields or {})
    clash = sorted(set(own) & set(audit))
    if clash:
        raise HAVNValidationError(
            "custom_fields", f"{', '.join(clash)} is reserved for the conversion audit trail in client mode; "
            "rename your field, or set HAVN_CURRENCY_CONVERSION = \"server\"")
    merged = {**own, **audit}
    if len(merged) > MAX_CUSTOM_FIELDS:
        parts = [f"the conversion audit trail takes {len(audit)} ({', '.join(audit)})"]
        if own:
            parts.append(f"your custom_fields add {len(own)} ({', '.join(sorted(own))})")
        raise HAVNValidationError(
            "custom_fields",
            f"HAVN accepts at most {MAX_CUSTOM_FIELDS} custom_fields entries, but {' and '.join(parts)}. "
            "Nothing was sent. Either drop your own custom_fields"
            + (" and the subtotal (a subtotal adds original_subtotal)" if "original_subtotal" in audit else "")
            + ", or set HAVN_CURRENCY_CONVERSION = \"server\" so HAVN converts and keeps the audit itself")
    return merged


def parse_rate_table(value: Any, *, field: Optional[str] = None) -> Dict[str, Decimal]:
    """A rate table (currency → USD per major unit) from a mapping or a string; the one parser of them.

    Used for ``HAVN_EXCHANGE_RATES``, the sandbox's ``HAVN_SANDBOX_EXCHANGE_RATES``
    and its rate-changing control routes. A string is a JSON object
    (``{"IDR": "0.0000633"}``) or ``"IDR=0.0000633,EUR=1.08"``. Floats are refused;
    currency codes must be accepted ones; USD, if given, must be 1. Raises
    :class:`HAVNValidationError` (a ``ValueError``) saying what is wrong; its
    ``field`` is the currency code, prefixed by ``field`` and a dot when given.
    """
    whole = field or "exchange_rates"
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text, parse_float=str, parse_int=str)
            except ValueError:
                raise HAVNValidationError(whole, 'is not a JSON object such as {"IDR": "0.0000633"}') from None
        else:
            pairs: Dict[str, str] = {}
            for item in text.replace(";", ",").split(","):
                if not item.strip():
                    continue
                code, sep, written = item.partition("=")
                if not sep:
                    raise HAVNValidationError(
                        whole, f"{item.strip()!r} is not CODE=RATE; write e.g. IDR=0.0000633,EUR=1.08")
                pairs[code] = written
            value = pairs
    if not isinstance(value, Mapping):
        raise HAVNValidationError(
            whole, 'give a dict such as {"IDR": "0.0000633"} (USD per one major unit, decimal strings)')
    table: Dict[str, Decimal] = {}
    for code, raw in value.items():
        key = str(code).strip().upper()
        name = f"{field}.{key}" if field else key
        if key not in SUPPORTED_CURRENCIES:
            raise HAVNValidationError(name, f"{code!r} is not a currency HAVN accepts; use one of "
                                            f"{', '.join(sorted(SUPPORTED_CURRENCIES))}")
        rate = parse_rate(raw, field=name)
        if key == "USD" and rate != 1:
            raise HAVNValidationError(name, "the USD rate is always 1")
        table[key] = rate
    return table


_MAX_SOURCE = 200
#: The source recorded for a rate taken from the config.
TABLE_SOURCE = "HAVN_EXCHANGE_RATES"


def resolve_rate(currency: str, *, provider: Optional[RateProvider] = None,
                 table: Optional[Mapping[str, Decimal]] = None) -> Tuple[Decimal, str]:
    """``(rate, source)`` for converting ``currency`` client-side: the provider first, then the table.

    The provider may return ``None`` to fall back to the table. A provider that
    returns anything but ``(Decimal or decimal string, non-empty source text)``
    — a float in particular — raises :class:`HAVNConfigError`; so does a
    currency with no rate anywhere.
    """
    if currency == "USD":
        return Decimal(1), "USD"
    if provider is not None:
        answer = provider(currency)
        if answer is not None:
            if not isinstance(answer, tuple) or len(answer) != 2:
                raise HAVNConfigError(
                    f"the HAVN rate provider returned {type(answer).__name__} for {currency}; return a tuple "
                    "(rate as Decimal or decimal string, source text), or None to use HAVN_EXCHANGE_RATES")
            raw, source = answer
            try:
                rate = parse_rate(raw)
            except HAVNValidationError as exc:
                raise HAVNConfigError(f"the HAVN rate provider's rate for {currency} is unusable: {exc.reason}") from None
            if not isinstance(source, str) or not source.strip() or len(source.strip()) > _MAX_SOURCE:
                raise HAVNConfigError(
                    f"the HAVN rate provider must name the source of its {currency} rate (text of 1 to "
                    f"{_MAX_SOURCE} characters, e.g. \"ECB 2026-11-27\"); it is kept on the payment for audit")
            return rate, source.strip()
    if table is not None and currency in table:
        return table[currency], TABLE_SOURCE
    raise HAVNConfigError(
        f"HAVN_CURRENCY_CONVERSION is \"client\" but there is no exchange rate for {currency}: add it to "
        f"HAVN_EXCHANGE_RATES (e.g. {{\"{currency}\": \"1.08\"}}, USD per one {currency}), return it from your "
        "@havn.rate_provider, or set HAVN_CURRENCY_CONVERSION = \"server\" to let HAVN convert")


#: Keys of HAVN's conversion verdict kept for audit (the ``transaction.conversion_failed`` data's).
FAILURE_KEYS = ("reason", "original_amount", "original_currency", "submitted_amount", "expected_amount",
                "submitted_exchange_rate", "server_exchange_rate")
_DEFAULT_REASON = "conversion failed at HAVN"


def _text_or_none(value: Any, limit: int) -> Optional[str]:
    return value if isinstance(value, str) and value and len(value) <= limit else None


def _int_or_none(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def failure_details(data: Mapping[str, Any]) -> Dict[str, Any]:
    """HAVN's conversion verdict from an event's ``data`` or a FAILED answer, sanitised for audit.

    Every key of :data:`FAILURE_KEYS` is present: amounts are integers (USD
    cents, the original in its minor units) or ``None``, rates and the
    currency are strings or ``None``, ``reason`` is always a text.
    """
    reason = _text_or_none(data.get("reason"), 1000) or _DEFAULT_REASON
    return {
        "reason": reason,
        "original_amount": _int_or_none(data.get("original_amount")),
        "original_currency": _text_or_none(data.get("original_currency"), 3),
        "submitted_amount": _int_or_none(data.get("submitted_amount")),
        "expected_amount": _int_or_none(data.get("expected_amount")),
        "submitted_exchange_rate": _text_or_none(data.get("submitted_exchange_rate"), 64),
        "server_exchange_rate": _text_or_none(data.get("server_exchange_rate"), 64),
    }

"""HAVN's payload rules (havn-contract.md §3), shared by the client and the sandbox.

Each function checks one value and returns it normalised the way the official
SDK puts it on the wire, or raises :class:`HAVNValidationError` naming the
field. No Flask, no I/O.
"""
from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar, Union

from .currency import MAX_CUSTOM_FIELDS, SUPPORTED_CURRENCIES, unsupported
from .errors import HAVNValidationError

T = TypeVar("T")

__all__ = [
    "MAX_AMOUNT",
    "MAX_BULK_SIZE",
    "MAX_CUSTOM_FIELDS",
    "MAX_ID",
    "FieldErrors",
    "as_int",
    "check_id",
    "optional_text",
    "CUSTOMER_TYPES",
    "check_amount",
    "check_email",
    "check_currency",
    "check_custom_fields",
    "check_code",
    "check_text",
    "check_bool",
    "check_country_code",
    "optional_code",
    "MAX_INT64",
    "MIN_INT64",
    "MAX_JSON_DEPTH",
    "MAX_EMAIL_LENGTH",
    "MAX_CUSTOM_FIELD_KEY",
    "MAX_CUSTOM_FIELD_TEXT",
    "MAX_CUSTOM_FIELDS_BYTES",
    "check_storable",
    "check_unicode",
    "check_recorded_custom_fields",
    "json_depth",
    "load_json",
]

#: Largest amount HAVN accepts, in raw minor units ("$10M" in cents).
MAX_AMOUNT = 1_000_000_000
#: Most users HAVN accepts in one bulk user-sync request (contract §3.5).
MAX_BULK_SIZE = 50
#: Largest id a 32-bit ``INTEGER`` primary key holds: larger ids cannot exist (and would overflow drivers).
MAX_ID = 2 ** 31 - 1
#: The range of a signed 64-bit ``BIGINT``: an integer outside it fits no integer column (and PostgreSQL
#: refuses it), so JSON from outside may not carry one.
MAX_INT64 = 2 ** 63 - 1
MIN_INT64 = -(2 ** 63)
#: Deepest nesting of objects and arrays accepted in JSON from outside (request bodies, webhook events).
#: Ours are at most 4 deep; Python's parser and serialiser recurse once per level and fail near 1000.
MAX_JSON_DEPTH = 32
#: Longest email address (RFC 5321: a 256-octet path less its angle brackets).
MAX_EMAIL_LENGTH = 254
#: Bounds of a recorded payment's ``custom_fields`` (Stripe-metadata-like): HAVN echoes them back in its
#: ``commission.distributed`` event, so they must stay small enough for the receiver to accept that event.
MAX_CUSTOM_FIELD_KEY = 40
MAX_CUSTOM_FIELD_TEXT = 500
#: Largest ``custom_fields`` as compact UTF-8 JSON, in bytes.
MAX_CUSTOM_FIELDS_BYTES = 2048
CUSTOMER_TYPES = ("NEW_CUSTOMER", "RECURRING")
_EMAIL = re.compile(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$")
#: What no database text column stores: NUL (PostgreSQL refuses it) and unpaired UTF-16 surrogates
#: (they have no UTF-8 form; ``"\ud800"`` is valid JSON but not text).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: A JSON string (escapes included; an unterminated one runs to the end, so the scan never restarts
#: inside it and stays linear), and anything that is not a bracket: what the depth scan skips.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def check_amount(value: Any, field: str = "amount", *, maximum: int = MAX_AMOUNT, over: str = "") -> int:
    """An integer number of minor units, 1 … ``maximum`` (HAVN's 1,000,000,000); ``over`` adds what to do."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise HAVNValidationError(field, "must be an integer number of minor units (e.g. cents), not "
                                  f"{type(value).__name__}")
    if value <= 0:
        raise HAVNValidationError(field, "must be greater than 0")
    if value > maximum:
        raise HAVNValidationError(field, f"must be at most {maximum} minor units{over}")
    return value


def check_email(value: Any, field: str = "email", *, max_length: int = MAX_EMAIL_LENGTH) -> str:
    """An address matching HAVN's pattern, at most ``max_length`` characters (pass the width of the
    column it is stored in when that is narrower); returned unchanged (HAVN does not normalise)."""
    if not isinstance(value, str) or not _EMAIL.match(value):
        raise HAVNValidationError(field, "must be a valid email address like name@example.com")
    limit = min(max_length, MAX_EMAIL_LENGTH)
    if len(value) > limit:
        raise HAVNValidationError(field, f"must be at most {limit} characters (this one has {len(value)})")
    return value


def check_currency(value: Any, field: str = "currency") -> str:
    """Stripped, upper-cased and one of the accepted currencies (HAVN's 26 plus its minor-unit table's 7)."""
    if not isinstance(value, str):
        raise HAVNValidationError(field, "must be a 3-letter currency code such as USD")
    code = value.strip().upper()
    if code not in SUPPORTED_CURRENCIES:
        raise unsupported(code, field)
    return code


def check_custom_fields(value: Any, field: str = "custom_fields") -> dict:
    """At most 3 entries, string keys, scalar (str/int/float/bool) values."""
    if not isinstance(value, Mapping):
        raise HAVNValidationError(field, "must be an object of at most 3 key/value pairs")
    if len(value) > MAX_CUSTOM_FIELDS:
        raise HAVNValidationError(field, f"HAVN accepts at most {MAX_CUSTOM_FIELDS} entries, got {len(value)}; "
                                  "drop some fields")
    for key, item in value.items():
        if not isinstance(key, str):
            raise HAVNValidationError(field, "keys must be strings")
        if item is None or not isinstance(item, (str, int, float, bool)):
            raise HAVNValidationError(f"{field}.{key}", "values must be a string, number or boolean")
        if isinstance(item, float) and not math.isfinite(item):
            raise HAVNValidationError(f"{field}.{key}", "NaN and Infinity are not JSON; send a finite number")
    return dict(value)


def check_recorded_custom_fields(value: Any, field: str = "custom_fields") -> dict:
    """:func:`check_custom_fields`, bounded so that HAVN's echo of them stays an event we accept.

    HAVN sends a payment's ``custom_fields`` back in ``commission.distributed``;
    whatever is recorded must pass the webhook receiver (integers within 64
    bits, text a database stores) and stay small: keys of 1 to
    :data:`MAX_CUSTOM_FIELD_KEY` characters, text values of at most
    :data:`MAX_CUSTOM_FIELD_TEXT` characters, :data:`MAX_CUSTOM_FIELDS_BYTES`
    bytes in all as compact UTF-8 JSON.
    """
    fields = check_custom_fields(value, field)
    for key, item in fields.items():
        where = f"{field}.{key[:MAX_CUSTOM_FIELD_KEY]}"
        if not key or len(key) > MAX_CUSTOM_FIELD_KEY:
            raise HAVNValidationError(where, f"keys must be 1 to {MAX_CUSTOM_FIELD_KEY} characters; shorten it")
        check_storable(key, where)
        if isinstance(item, str):
            if len(item) > MAX_CUSTOM_FIELD_TEXT:
                raise HAVNValidationError(where, f"text values must be at most {MAX_CUSTOM_FIELD_TEXT} characters "
                                          f"(this one has {len(item)}); keep long data in your own tables and "
                                          "put its id here")
            check_storable(item, where)
        elif isinstance(item, int) and not isinstance(item, bool) and not MIN_INT64 <= item <= MAX_INT64:
            raise HAVNValidationError(where, f"integers must be from {MIN_INT64} to {MAX_INT64} (64 bits); "
                                      "send a larger number as a string")
    size = len(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_CUSTOM_FIELDS_BYTES:
        raise HAVNValidationError(field, f"must be at most {MAX_CUSTOM_FIELDS_BYTES} bytes as JSON (these are "
                                  f"{size}); keep long data in your own tables and put its id here")
    return fields


def check_storable(value: str, field: str) -> str:
    """``value`` unless it holds a character no database text column stores (NUL, a lone surrogate)."""
    return _refuse(_UNSTORABLE, value, field)


def check_unicode(value: str, field: str) -> str:
    """``value`` unless it holds a lone UTF-16 surrogate: valid as a JSON escape, but not text (it has
    no UTF-8 form, so it cannot be stored, logged or rendered; I-JSON, RFC 7493, forbids it)."""
    return _refuse(_SURROGATE, value, field)


def _refuse(pattern: "re.Pattern[str]", value: str, field: str) -> str:
    found = pattern.search(value)
    if found is not None:
        what = "a NUL character" if found.group() == "\x00" else "an unpaired UTF-16 surrogate"
        raise HAVNValidationError(field, f"contains {what} (at position {found.start()}), which cannot be "
                                  "stored; remove it")
    return value


def json_depth(text: str) -> int:
    """How deeply ``text`` nests JSON objects and arrays, found by scanning, not parsing.

    Strings are skipped (their brackets do not count), then the brackets left
    are summed: linear time, no recursion, so it is safe on any input and
    tells a document too deep to parse or store before ``json.loads`` sees it.
    Invalid JSON gets a number too; the parser refuses it afterwards.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(raw: Union[bytes, str], field: str = "body", *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from outside: strict UTF-8, no ``NaN``/``Infinity``, at most ``max_depth`` levels deep.

    The one parser of the routes and the webhook receiver. A document nested
    deeper than ``max_depth`` is refused before parsing (Python's parser and
    serialiser recurse per level: a deep one parses, then fails to store);
    every problem raises :class:`HAVNValidationError` on ``field``.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    except UnicodeDecodeError:
        raise HAVNValidationError(field, "must be UTF-8 encoded JSON") from None
    depth = json_depth(text)
    if depth > max_depth:
        raise HAVNValidationError(field, f"nests objects and arrays {depth} levels deep; at most {max_depth} are "
                                  "accepted, send a flatter document")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise HAVNValidationError(field, f"is not valid JSON ({exc})"[:300]) from None


def check_code(value: Any, field: str = "referral_code", *, upper: bool = False) -> str:
    """A referral/upline code: 3 … 50 characters, not blank (stripped; optionally upper-cased)."""
    if not isinstance(value, str) or not value.strip():
        raise HAVNValidationError(field, "must be a non-empty code such as HAVN-MJ-001")
    code = value.strip()
    if upper:
        code = code.upper()
    if not 3 <= len(code) <= 50:
        raise HAVNValidationError(field, "must be 3 to 50 characters long")
    return check_storable(code, field)


def optional_code(value: Any, field: str, *, upper: bool = False) -> Optional[str]:
    """:func:`check_code` for an optional code: ``None`` stays ``None``."""
    return None if value is None else check_code(value, field, upper=upper)


def check_text(value: Any, field: str, *, max_length: int, strip: bool = False) -> str:
    """A non-blank string of at most ``max_length`` characters that a database can store."""
    if not isinstance(value, str) or not value.strip():
        raise HAVNValidationError(field, "must be a non-empty string")
    if len(value) > max_length:
        raise HAVNValidationError(field, f"must be at most {max_length} characters")
    check_storable(value, field)
    return value.strip() if strip else value


def check_bool(value: Any, field: str) -> bool:
    """A real boolean (``1`` or ``"true"`` are refused)."""
    if not isinstance(value, bool):
        raise HAVNValidationError(field, "must be true or false")
    return value


def check_country_code(value: Any, field: str = "country_code") -> str:
    """Two upper-case letters (ISO 3166-1 alpha-2)."""
    if not isinstance(value, str) or len(value) != 2 or not value.isalpha() or not value.isupper():
        raise HAVNValidationError(field, "must be a 2-letter upper-case country code such as ID")
    return value


def as_int(value: Any) -> Optional[int]:
    """``value`` if it is a real integer (not a bool), else ``None``: for tolerant reading of answers."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_id(value: Any, field: str) -> int:
    """The integer id of a row: 1 … :data:`MAX_ID` (larger ids cannot exist)."""
    if as_int(value) is None or not 1 <= value <= MAX_ID:
        raise HAVNValidationError(field, f"must be the integer id of an existing record (1 to {MAX_ID})")
    return int(value)


def optional_text(value: Any, field: str, max_length: int) -> Optional[str]:
    """``None`` or blank → ``None``; else a stripped string (an int is taken as its digits) of at most
    ``max_length`` characters."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise HAVNValidationError(field, "must be a string")
    text = str(value).strip()
    if not text:
        return None
    if len(text) > max_length:
        raise HAVNValidationError(field, f"must be at most {max_length} characters")
    return check_storable(text, field)


class FieldErrors:
    """Collects one message per field, so bad input is answered with all of its problems at once.

    ``errors.check(rules.check_email, value, "email")`` returns the checked
    value or ``None`` (noting the problem); :meth:`raise_if_any` raises one
    :class:`HAVNValidationError` whose ``errors`` maps every field to its message.
    """

    def __init__(self) -> None:
        self.errors: Dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.errors)

    def check(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> Optional[T]:
        """``function(*args, **kwargs)``, or ``None`` with its field's message noted."""
        try:
            return function(*args, **kwargs)
        except HAVNValidationError as exc:
            self.add_error(exc)
            return None

    def add(self, field: str, message: str) -> None:
        """Note ``message`` for ``field`` (the first message of a field is kept)."""
        self.errors.setdefault(field, message)

    def add_error(self, exc: HAVNValidationError) -> None:
        """Note every field of a validation error (its ``errors``, else its one field)."""
        for field, message in (exc.errors or {exc.field: exc.reason}).items():
            self.add(field, message)

    def raise_if_any(self) -> None:
        """Raise the collected problems as one :class:`HAVNValidationError` (nothing if none)."""
        if not self.errors:
            return
        field, message = next(iter(self.errors.items()))
        more = len(self.errors) - 1
        if more:
            message += f" (and {more} more field{'s' if more > 1 else ''}: see .errors)"
        raise HAVNValidationError(field, message, errors=dict(self.errors))

"""What one backend call works with: the session, settings, rates, the call's clock and ids.

Ids are ``{prefix}_{seq:06d}{suffix}``: ``seq`` comes from the stored rows
(:func:`store.next_seq`), the suffix from ``sha256(seed, prefix, seq)`` when a seed
is set (deterministic) or from :mod:`secrets` otherwise. Uniqueness rests on
``seq``, so the suffix never needs to be checked.
"""
from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Dict, Mapping, Optional, Tuple, Type

from sqlalchemy import select
from sqlalchemy.orm import Session

from .settings import SandboxSettings
from .store import Base, RateRow, next_seq

__all__ = ["Ids", "Ctx", "iso", "rates_in_force", "utcnow"]

_ALNUM = string.ascii_uppercase + string.digits


def utcnow() -> datetime:
    """The real clock: an aware UTC datetime."""
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """``2026-11-27T10:15:30Z`` (UTC, whole seconds)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Ids:
    """Id suffixes: deterministic from ``seed`` when one is given, random otherwise."""

    def __init__(self, seed: Optional[int]) -> None:
        self.seed = seed

    def _digest(self, prefix: str, n: int) -> bytes:
        if self.seed is None:
            return secrets.token_bytes(32)
        return hashlib.sha256(f"{self.seed}:{prefix}:{n}".encode("ascii")).digest()

    def hex(self, prefix: str, n: int, length: int = 6) -> str:
        """``length`` lowercase hex characters for the ``n``-th ``prefix`` id."""
        return self._digest(prefix, n).hex()[:length]

    def alnum(self, prefix: str, n: int, length: int = 6) -> str:
        """``length`` upper-case letters and digits (voucher codes)."""
        return "".join(_ALNUM[b % len(_ALNUM)] for b in self._digest(prefix, n)[:length])

    def make(self, prefix: str, n: int) -> str:
        """The public id of the ``n``-th row with ``prefix`` (``usr``, ``asc``, ``txn``…)."""
        return f"{prefix}_{n:06d}{self.hex(prefix, n)}"


def rates_in_force(session: Session, configured: Mapping[str, Decimal]) -> Dict[str, Decimal]:
    """The configured rates with the stored changes (``PUT /rates``, seeds) over them."""
    rates = dict(configured)
    rates.update((row.code, Decimal(row.rate)) for row in session.scalars(select(RateRow)))
    return rates


@dataclass
class Ctx:
    """One backend call's working set. ``rates`` are read from the store on first use (most calls
    convert nothing)."""

    session: Session
    settings: SandboxSettings
    ids: Ids
    now: datetime
    _rates: Optional[Mapping[str, Decimal]] = field(default=None, repr=False)

    @property
    def rates(self) -> Mapping[str, Decimal]:
        """The exchange rates in force for this call (USD per one major unit)."""
        if self._rates is None:
            self._rates = rates_in_force(self.session, self.settings.exchange_rates)
        return self._rates

    @rates.setter
    def rates(self, value: Mapping[str, Decimal]) -> None:
        self._rates = value

    @property
    def stamp(self) -> str:
        """The call's timestamp in ISO-8601 UTC."""
        return iso(self.now)

    def new_id(self, prefix: str, model: Type[Base]) -> Tuple[int, str]:
        """The next ``(seq, id)`` for a row of ``model``."""
        seq = next_seq(self.session, model)
        return seq, self.ids.make(prefix, seq)

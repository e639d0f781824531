"""Property tests (hypothesis) of the money path: exact, half-up once, client and sandbox agree to the cent."""
from __future__ import annotations

import itertools
import json
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any, Dict, Iterator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flask_havn.currency import SUPPORTED_CURRENCIES, convert_to_usd, from_usd_cents, minor_units, to_usd_cents
from flask_havn.errors import HAVNValidationError
from flask_havn.rules import MAX_AMOUNT
from flask_havn.sandbox.backend import SandboxBackend
from flask_havn.sandbox.settings import SandboxSettings
from flask_havn.sandbox.transactions import commission_shares

#: Modest, so the whole suite stays fast; no example database on disk.
FAST = settings(max_examples=60, deadline=None, database=None)

CURRENCIES = sorted(SUPPORTED_CURRENCIES - {"USD"})
currencies = st.sampled_from(CURRENCIES)
amounts = st.integers(min_value=1, max_value=MAX_AMOUNT)
#: Positive rates written with 1 to 12 significant digits, from 1e-12 (the smallest accepted) up.
rates = st.integers(min_value=1, max_value=999_999_999_999).flatmap(
    lambda mantissa: st.integers(min_value=-11 - len(str(mantissa)), max_value=-3).map(
        lambda exponent: Decimal(mantissa).scaleb(exponent)))
#: Realistic rates (USD per major unit between 0.00001 and 10) for the end-to-end properties.
realistic_rates = st.builds(lambda mantissa, exponent: Decimal(mantissa).scaleb(exponent),
                            st.integers(min_value=1, max_value=99_999), st.integers(min_value=-9, max_value=-4))
_ids = itertools.count()


def exact_half_up_cents(amount: int, currency: str, rate: Decimal) -> int:
    """An independent oracle: rational arithmetic, then round half up."""
    cents = Fraction(amount, 10 ** minor_units(currency)) * Fraction(rate) * 100
    return int(cents + Fraction(1, 2)) if cents >= 0 else -int(-cents + Fraction(1, 2))


@FAST
@given(amounts, currencies, rates)
def test_conversion_never_raises_for_valid_input_and_rounds_half_up_once(amount: int, currency: str,
                                                                        rate: Decimal) -> None:
    cents = to_usd_cents(amount, currency, rate)
    assert isinstance(cents, int) and cents >= 0
    assert cents == exact_half_up_cents(amount, currency, rate)
    assert to_usd_cents(amount, currency, format(rate, "f")) == cents  # a decimal string is the same rate
    conversion = convert_to_usd(amount, currency, rate, subtotal=amount)
    assert conversion.amount_usd == conversion.subtotal_usd == cents
    assert isinstance(from_usd_cents(max(cents, 1), currency, rate), int)


@FAST
@given(st.floats(allow_nan=True, allow_infinity=True), currencies, amounts)
def test_a_float_rate_is_never_accepted(rate: float, currency: str, amount: int) -> None:
    with pytest.raises(HAVNValidationError):
        to_usd_cents(amount, currency, rate)  # type: ignore[arg-type]
    with pytest.raises(HAVNValidationError):
        convert_to_usd(amount, currency, rate)  # type: ignore[arg-type]


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=1, max_value=MAX_AMOUNT), currencies, rates)
def test_a_float_amount_is_never_accepted(amount: float, currency: str, rate: Decimal) -> None:
    with pytest.raises(HAVNValidationError):
        to_usd_cents(amount, currency, rate)  # type: ignore[arg-type]
    with pytest.raises(HAVNValidationError):
        convert_to_usd(amount, currency, rate)  # type: ignore[arg-type]


@FAST
@given(st.integers(min_value=1, max_value=MAX_AMOUNT),
       st.lists(st.integers(min_value=0, max_value=2000).map(lambda n: Decimal(n).scaleb(-2)), min_size=1,
                max_size=20).filter(lambda levels: sum(levels) <= 100))
def test_commission_shares_never_exceed_the_amount(amount_usd: int, levels: Any) -> None:
    shares = commission_shares(amount_usd, tuple(levels))
    assert all(isinstance(s, int) and s >= 0 for s in shares)
    assert sum(shares) <= amount_usd
    assert amount_usd - sum(shares) >= 0  # what the platform keeps


# -- against the sandbox backend -------------------------------------------------------------


@pytest.fixture(scope="module")
def backend() -> Iterator[SandboxBackend]:
    """One sandbox with a five-level chain (HAVN-LV-001 at the bottom) for every example."""
    b = SandboxBackend(SandboxSettings(seed=11), clock=lambda: datetime(2026, 11, 27, 10, tzinfo=timezone.utc))
    specs = []
    for n in range(5, 0, -1):
        spec: Dict[str, Any] = {"name": f"Level {n}", "referral_code": f"HAVN-LV-{n:03d}"}
        if n < 5:
            spec["upline_code"] = f"HAVN-LV-{n + 1:03d}"
        specs.append(spec)
    b.seed({"associates": specs})
    yield b
    b.close()


def _payload(**money: Any) -> Dict[str, Any]:
    payload = {"payment_gateway_transaction_id": f"pg_prop_{next(_ids)}", "payment_gateway": "STRIPE",
               "customer_email": "buyer@example.com", "referral_code": "HAVN-LV-001", **money}
    return json.loads(json.dumps(payload))  # what crosses the wire


def _assert_split(body: Dict[str, Any], amount_usd: int) -> None:
    commissions = body["commissions"]
    assert sum(c["amount"] for c in commissions) == body["total_commission"]
    assert body["total_commission"] + body["transaction"]["platform_amount"] == amount_usd


@FAST
@given(amount=amounts, currency=currencies, rate=realistic_rates)
def test_client_conversion_and_the_sandbox_agree_to_the_cent(backend: SandboxBackend, amount: int, currency: str,
                                                            rate: Decimal) -> None:
    conversion = convert_to_usd(amount, currency, rate)
    assume(1 <= conversion.amount_usd <= MAX_AMOUNT)
    backend.set_rates({currency: format(rate, "f")})
    out = backend.transaction(_payload(amount=conversion.amount_usd, currency="USD",
                                       custom_fields=conversion.audit_fields()))
    body = out.body
    assert (out.status, body["transaction"]["status"]) == (201, "completed"), body.get("message")
    assert [e.type for e in out.events] in ([], ["commission.distributed"])
    _assert_split(body, conversion.amount_usd)


@FAST
@given(amount=amounts, currency=currencies, rate=realistic_rates, off_by=st.sampled_from([-1, 1]))
def test_a_client_amount_off_by_one_cent_is_failed_with_no_commission(backend: SandboxBackend, amount: int,
                                                                     currency: str, rate: Decimal, off_by: int) -> None:
    conversion = convert_to_usd(amount, currency, rate)
    wrong = conversion.amount_usd + off_by
    assume(1 <= wrong <= MAX_AMOUNT)
    backend.set_rates({currency: format(rate, "f")})
    out = backend.transaction(_payload(amount=wrong, currency="USD", custom_fields=conversion.audit_fields()))
    assert (out.status, out.body["transaction"]["status"], out.body["commissions"]) == (200, "FAILED", [])
    assert (out.body["submitted_amount"], out.body["expected_amount"]) == (wrong, conversion.amount_usd)
    assert [e.type for e in out.events] == ["transaction.conversion_failed"]


@FAST
@given(amount=amounts, currency=currencies, rate=realistic_rates)
def test_server_conversion_equals_the_client_computation(backend: SandboxBackend, amount: int, currency: str,
                                                        rate: Decimal) -> None:
    expected = to_usd_cents(amount, currency, rate)
    backend.set_rates({currency: format(rate, "f")})
    out = backend.transaction(_payload(amount=amount, currency=currency, server_side_conversion=True))
    txn = out.body["transaction"]
    assert (out.status, txn["status"], txn["amount_usd"]) == (201, "completed", expected)
    _assert_split(out.body, expected)

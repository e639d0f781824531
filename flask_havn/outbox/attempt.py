"""One delivery attempt of a claimed payment: build the call, send it, classify and record the outcome.

The transaction carries the **project's upline code** as ``referral_code``
(never the project's own code; no upline → no code: platform revenue) and the
payment's stable idempotent identity (its ``payment_gateway_transaction_id``,
from which the client derives the ``Idempotency-Key``), so a re-send after a
lost answer gets HAVN's original transaction back and no second commission.

The money sent is fixed on the row (:func:`money_fields`): the original
amount and currency (HAVN converts), or, for a payment recorded with
``HAVN_CURRENCY_CONVERSION = "client"``, the stored USD cents with the audit
trail in ``custom_fields``. HAVN's verdict on a conversion is recorded on the
row (``conversion_verdict``, ``havn_amount_usd``, ``havn_details``).

Outcomes: success → ``sent``; HAVN's FAILED conversion verdict →
``conversion_failed`` (and the ``conversion_failed`` signal, inside the
recording transaction, unless HAVN's event recorded the failure first); 409
(the identity was sent before with other content), a validation error, or
a 4xx other than 401/429 → ``dead`` at once (retrying cannot help); network
errors, 401, 429 and 5xx → ``failed`` with
``next_attempt_at = now + min(HAVN_DELIVERY_MAX_BACKOFF, HAVN_DELIVERY_BACKOFF
* 2 ** (attempts - 1))``, and ``dead`` once ``HAVN_DELIVERY_MAX_ATTEMPTS`` are
spent. The outcome is written only while this worker still holds the claim;
``transaction_sent`` / ``transaction_failed`` follow the commit (a receiver
that raises is logged, never undoes the delivery).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

import sqlalchemy as sa
import sqlalchemy.orm
from flask import current_app

from ..announce import announce
from ..currency import Conversion, failure_details, parse_rate, rate_text, with_audit
from ..errors import (
    HAVNAPIError,
    HAVNAuthError,
    HAVNConflictError,
    HAVNError,
    HAVNNetworkError,
    HAVNNotFoundError,
    HAVNRateLimitError,
    HAVNValidationError,
)
from ..models import loaded_values, show_committed, utcnow
from ..rules import as_int
from ..signals import conversion_failed, transaction_failed, transaction_sent

if TYPE_CHECKING:  # pragma: no cover
    from ..results import TransactionResult
    from ..state import HAVNState

__all__ = ["Attempt", "attempt", "classify_error", "money_fields", "retry_delay", "send"]

logger = logging.getLogger("flask_havn.delivery")


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt did.

    ``state`` is the delivery state *this attempt recorded* (``sent``,
    ``failed``, ``dead``, ``conversion_failed``), or ``None`` when its answer
    was dropped because the row had moved on (the lease ran out, or HAVN's
    event recorded another verdict first). ``payment`` is the row, showing
    what this attempt recorded.
    """

    payment: Any
    state: Optional[str]
    error: Optional[HAVNError] = None


def retry_delay(attempts: int, base: float, maximum: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``min(maximum, base * 2**(attempts-1))``."""
    exponent = max(0, attempts - 1)
    if base <= 0:
        return 0.0
    # Cap the exponent so a huge attempt count cannot overflow the float.
    return float(min(maximum, base * (2 ** min(exponent, 64))))



def classify_error(error: BaseException) -> Tuple[str, str]:
    """``("failed" | "dead", what to record)`` for an exception raised by a delivery attempt.

    ``dead`` means retrying the same request cannot succeed: a 409 (HAVN holds
    this identity with other content), a local validation error, or a 4xx
    HAVN refused as invalid (400/404/422…). Everything else is transient.
    """
    if isinstance(error, HAVNConflictError):
        return "dead", (
            f"HAVN answered 409: it already holds a different transaction for this payment's "
            f"payment_gateway_transaction_id or Idempotency-Key ({error.message}). The payment was changed "
            "after it was first sent; record a new payment with a new payment_gateway_transaction_id for "
            "a new charge. Not retried."
        )
    if isinstance(error, HAVNValidationError):
        return "dead", f"the payment breaks a HAVN rule and was not sent ({error.message}); fix the row, then retry it"
    if isinstance(error, HAVNNotFoundError):
        return "dead", (f"HAVN does not know a code this payment names ({error.message}); check the project's "
                        "upline_referral_code and the voucher code, then retry it")
    if isinstance(error, (HAVNRateLimitError, HAVNAuthError)):
        return "failed", error.message
    if isinstance(error, HAVNAPIError):
        status = error.status_code
        if status is not None and 400 <= status < 500:
            return "dead", f"HAVN refused the transaction ({error.message}); fix the payment, then retry it"
        return "failed", error.message
    if isinstance(error, (HAVNNetworkError, HAVNError)):
        return "failed", error.message
    return "failed", f"unexpected error while delivering: {type(error).__name__}: {error}"



def money_fields(payment: Any) -> Dict[str, Any]:
    """The money part of ``payment``'s transaction call, built only from what the row stores.

    Client mode (``conversion_mode == "client"``): the USD cents and rate fixed
    when the payment was recorded, ``currency`` USD, and the audit trail
    (``original_currency``, ``original_amount``, ``exchange_rate``, plus
    ``original_subtotal`` with a subtotal) merged into ``custom_fields`` — so a
    retry sends the very same payload. Otherwise the original amount and
    currency (the client adds ``server_side_conversion`` for a non-USD one).
    Raises :class:`HAVNValidationError` when the row cannot make a valid call.
    """
    if payment.conversion_mode != "client":
        return {"amount": payment.amount, "currency": payment.currency, "subtotal_transaction": payment.subtotal,
                "custom_fields": payment.custom_fields}
    if payment.amount_usd is None or payment.exchange_rate is None:
        raise HAVNValidationError("amount_usd", f"payment {payment.id} is marked for client-side conversion but "
                                  "stores no USD amount or rate; record it again")
    conversion = Conversion(
        original_amount=payment.amount, original_currency=payment.currency,
        rate=parse_rate(payment.exchange_rate), source=payment.exchange_rate_source or "",
        amount_usd=payment.amount_usd, original_subtotal=payment.subtotal, subtotal_usd=payment.subtotal_usd)
    return {"amount": conversion.amount_usd, "currency": "USD", "subtotal_transaction": conversion.subtotal_usd,
            "custom_fields": with_audit(payment.custom_fields, conversion.audit_fields()),
            "server_side_conversion": False}


def send(state: "HAVNState", payment: Any) -> "TransactionResult":
    """One transaction call for ``payment``; the upline's code is the referral code."""
    project = payment.project
    client = state.make_client()
    return client.transactions.send(
        # The guide's first rule: send the code of whoever referred THIS project (its upline),
        # never the project's own code. None → platform revenue.
        referral_code=project.upline_referral_code,
        payment_gateway_transaction_id=payment.payment_gateway_transaction_id,
        payment_gateway=payment.payment_gateway,
        customer_email=payment.customer_email,
        promo_code=payment.voucher_code,
        transaction_type=payment.transaction_type,
        invoice_id=payment.invoice_id,
        default_payment_gateway=state.config.payment_gateway,
        # Sent as it was recorded: a test-mode payment stays test data after HAVN_TEST_MODE goes off,
        # and a live one is sent live even while it is on.
        test_mode=bool(payment.test_mode),
        **money_fields(payment),
    )



def _accepted_currency(payment: Any, transaction: Mapping[str, Any]) -> Dict[str, Any]:
    """Audit columns from HAVN's acceptance of a non-USD payment (nothing for USD)."""
    if payment.conversion_mode is None:
        return {}
    values: Dict[str, Any] = {"conversion_verdict": "accepted"}
    usd = as_int(transaction.get("amount_usd"))
    if usd is None and transaction.get("currency") == "USD":
        usd = as_int(transaction.get("amount"))
    values["havn_amount_usd"] = usd
    if payment.conversion_mode == "server":
        # HAVN converted: its figures are the ones used (when its answer reports them).
        rate = transaction.get("exchange_rate")
        try:
            rate_used = rate_text(rate) if isinstance(rate, str) else None
        except HAVNValidationError:
            rate_used = None
        values.update(amount_usd=usd, exchange_rate=rate_used, exchange_rate_source="HAVN" if rate_used else None)
    return values


def _is_failed_verdict(result: Any) -> bool:
    return not result.success and str(result.transaction.status or "").upper() == "FAILED"


def _outcome(state: "HAVNState", payment: Any, result: Any, error: Optional[BaseException],
             now: datetime) -> Tuple[Dict[str, Any], Optional[HAVNError]]:
    """Column values to record for one attempt, and the error to signal (``None`` on success)."""
    config = state.config
    if error is None and result.success:
        return {
            "delivery_state": "sent",
            "havn_transaction_id": result.transaction.transaction_id,
            "commissions": [dict(c.raw) for c in result.commissions],
            "total_commission": result.total_commission,
            "havn_details": dict(result.transaction.raw) or None,
            "sent_at": now,
            "last_error": None,
            "next_attempt_at": None,
            **_accepted_currency(payment, result.transaction.raw),
        }, None
    if error is None and _is_failed_verdict(result):
        message = (f"HAVN recorded the transaction as FAILED: {result.message or 'no reason given'}. "
                   "No commission was paid; it is not retried (HAVN keeps the FAILED answer for this id).")
        failure = HAVNAPIError(message, response=result.raw)
        details = failure_details(result.raw)
        if details["submitted_amount"] is None:
            details["submitted_amount"] = payment.amount_usd if payment.conversion_mode == "client" else None
        return {
            "delivery_state": "conversion_failed",
            "havn_transaction_id": result.transaction.transaction_id,
            "havn_details": {**details, "transaction": dict(result.transaction.raw)},
            "commissions": [],
            "total_commission": 0,
            "last_error": message,
            "next_attempt_at": None,
            "conversion_verdict": "failed",
            "havn_amount_usd": details["expected_amount"],
        }, failure
    if error is None:
        error = HAVNAPIError(f"HAVN answered success=false ({result.message or 'no message'}); will retry",
                             response=result.raw)
    verdict, message = classify_error(error)
    signalled = error if isinstance(error, HAVNError) else HAVNError(message)
    attempts = payment.attempts
    if verdict == "failed" and attempts >= config.delivery_max_attempts:
        verdict = "dead"
        message = (f"gave up after {attempts} attempts; last error: {message}. Fix the cause, then run "
                   "`flask havn deliver --retry-dead` or POST …/payments/<id>/retry.")
    values: Dict[str, Any] = {"delivery_state": verdict, "last_error": message}
    if verdict == "failed":
        delay = retry_delay(attempts, config.delivery_backoff, config.delivery_max_backoff)
        if isinstance(error, HAVNRateLimitError) and error.retry_after:
            delay = min(max(delay, float(error.retry_after)), config.delivery_max_backoff)
        values["next_attempt_at"] = now + timedelta(seconds=delay)
    else:
        values["next_attempt_at"] = None
    return values, signalled


def attempt(state: "HAVNState", payment_id: int, worker_id: str, *, now: Optional[datetime] = None) -> Attempt:
    """Send a payment ``worker_id`` has claimed and record the outcome; what was recorded.

    Never raises for what HAVN or the network did (that is recorded on the
    row), nor for a signal receiver that raised (that is logged); only a
    database failure escapes, and the claim's lease then frees the row.
    """
    with state.shared_connection():
        return _attempt(state, payment_id, worker_id, now)


def _attempt(state: "HAVNState", payment_id: int, worker_id: str, now: Optional[datetime]) -> Attempt:
    session = state.session
    Payment = state.models.Payment  # type: ignore[union-attr]
    # Fresh from the database (the claim just committed), with its project in the same query.
    payment = session.get(Payment, payment_id, options=[sa.orm.joinedload(Payment.project)],
                          populate_existing=True)
    result: Any = None
    error: Optional[BaseException] = None
    try:
        result = send(state, payment)
    except Exception as exc:
        error = exc
        if not isinstance(exc, HAVNError):
            logger.exception("unexpected error delivering payment %s", payment_id)
    return _record(state, payment, worker_id, result, error, now=now)


def _record(state: "HAVNState", payment: Any, worker_id: str, result: Any, error: Optional[BaseException],
            now: Optional[datetime] = None) -> Attempt:
    """Write an attempt's outcome if ``worker_id`` still holds the claim; commit; signal.

    The row may have moved on while HAVN answered: HAVN's own event (the
    webhook receiver) may already have recorded the same verdict — then ours is
    written too — or a different one (``sent`` while our answer was lost), or
    the lease ran out and another worker holds it. Then only our claim is
    released and nothing else is written or signalled.
    """
    session = state.session
    Payment = state.models.Payment  # type: ignore[union-attr]
    finished = now or utcnow()
    values, failure = _outcome(state, payment, result, error, finished)
    values.update(claimed_by=None, claimed_at=None, updated_at=finished)
    target = values["delivery_state"]
    by_state, held_only = _held_row_updates(Payment.__table__)
    mine = {"row_id": payment.id, "worker": worker_id}

    def write(state_now: str) -> bool:
        return bool(session.execute(by_state, {**mine, "state_now": state_now, **values}).rowcount == 1)

    loaded = loaded_values(payment)
    in_transaction_signal = False
    try:
        # First "sending" → target: if that moved the row, this attempt is the first to record its
        # verdict. Else HAVN's event may have recorded the same verdict already: write ours too.
        first = write("sending")
        held = first or write(target)
        if not held:
            session.execute(held_only, {**mine, "claimed_by": None, "claimed_at": None})
        in_transaction_signal = first and target == "conversion_failed"
        if in_transaction_signal:
            session.refresh(payment)
            _announce_conversion_failure(payment)
        session.commit()
    except Exception as exc:
        session.rollback()
        if not in_transaction_signal:
            raise
        recorded = _conversion_receiver_failed(state, payment, worker_id, exc, finished)
        return Attempt(payment=show_committed(payment, loaded, recorded), state=recorded.get("delivery_state"),
                       error=failure)
    if not held:
        session.refresh(payment)
        logger.warning("payment %s: it changed while %s was delivering it (now %s; claim expired or HAVN's event "
                       "recorded it first); this attempt's %s answer is dropped (HAVN's idempotency keeps it to "
                       "one transaction)", payment.id, worker_id, payment.delivery_state, target)
        return Attempt(payment=payment, state=None, error=failure)
    show_committed(payment, loaded, values)
    logger.info("payment %s -> %s (attempt %s)%s", payment.id, target, payment.attempts,
                f": {values['last_error']}" if values.get("last_error") else "")
    if failure is None:
        announce(transaction_sent, f"payment {payment.id}", payment=payment, result=result)
    else:
        announce(transaction_failed, f"payment {payment.id}", payment=payment, error=failure)
    return Attempt(payment=payment, state=target, error=failure)


@lru_cache(maxsize=16)
def _held_row_updates(table: sa.Table) -> Tuple[Any, Any]:
    """UPDATEs of a row ``worker`` holds (``row_id``, ``worker``), built once; the SET columns are the
    parameters' other keys: one also requiring ``delivery_state = :state_now``, one not."""
    mine = (table.c.id == sa.bindparam("row_id"), table.c.claimed_by == sa.bindparam("worker"))
    return (table.update().where(*mine, table.c.delivery_state == sa.bindparam("state_now")),
            table.update().where(*mine))


def _announce_conversion_failure(payment: Any) -> None:
    """Send ``conversion_failed`` for HAVN's synchronous FAILED answer, inside the recording transaction.

    Like the webhook receiver does for the event: what receivers write through
    ``db.session`` commits with the verdict, and a receiver that raises undoes
    it (see :func:`_conversion_receiver_failed`). The event, when it arrives,
    finds the payment already ``conversion_failed`` and does not announce again.
    """
    details = dict(payment.havn_details or {})
    sender = current_app._get_current_object()  # type: ignore[attr-defined]  # inside the transaction: may raise
    conversion_failed.send(sender, event=None, payment=payment,
                           reason=details.get("reason") or payment.last_error, details=details)


def _conversion_receiver_failed(state: "HAVNState", payment: Any, worker_id: str, error: BaseException,
                                now: datetime) -> Dict[str, Any]:
    """A ``conversion_failed`` receiver raised: nothing was recorded; leave the payment to be asked again.

    It becomes ``failed`` with a retry time (or ``dead`` when its attempts are
    spent), so the next attempt re-sends the same payload, HAVN answers FAILED
    again and the signal is sent again. Returns the values written (empty if
    the claim was lost meanwhile or the database refused).
    """
    Payment = state.models.Payment  # type: ignore[union-attr]
    config = state.config
    attempts = payment.attempts or 0
    message = (f"HAVN answered FAILED (currency conversion) but a conversion_failed receiver raised "
               f"{type(error).__name__}: {error}; nothing was recorded, the next attempt asks HAVN again")
    values: Dict[str, Any] = {"delivery_state": "failed", "last_error": message, "claimed_by": None,
                              "claimed_at": None, "updated_at": now,
                              "next_attempt_at": now + timedelta(seconds=retry_delay(
                                  attempts, config.delivery_backoff, config.delivery_max_backoff))}
    if attempts >= config.delivery_max_attempts:
        values.update(delivery_state="dead", next_attempt_at=None)
    logger.error("payment %s: %s", payment.id, message)
    try:
        written = state.session.execute(
            sa.update(Payment).where(Payment.id == payment.id, Payment.claimed_by == worker_id,
                                     Payment.delivery_state == "sending")
            .values(**values).execution_options(synchronize_session=False)).rowcount == 1
        state.session.commit()
    except Exception:  # pragma: no cover - the database itself is failing; the lease frees the row
        state.session.rollback()
        logger.exception("payment %s: could not record the receiver's failure", payment.id)
        return {}
    return values if written else {}



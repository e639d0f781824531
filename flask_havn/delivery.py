"""Delivery of recorded payments to HAVN: the outbox worker.

A completed payment is committed first (the outbox row); delivery then sends
it. :func:`deliver` is the unit of work: give it a payment id inside an app
context (a request, ``flask havn deliver``, or a Celery/RQ task doing
``with app.app_context(): deliver(payment_id)``) and it

1. **claims** the row atomically — on PostgreSQL ``SELECT … FOR UPDATE SKIP
   LOCKED`` then an UPDATE, elsewhere a conditional ``UPDATE … WHERE id = :id
   AND <due>`` whose row count says who won — setting ``sending``,
   ``claimed_by``/``claimed_at`` and ``attempts + 1``, and commits, so two
   workers never send one payment at the same time;
2. sends the transaction with the **project's upline code** as
   ``referral_code`` (never the project's own code; no upline → no code:
   platform revenue) and the payment's stable idempotent identity (its
   ``payment_gateway_transaction_id``, from which the client derives the
   ``Idempotency-Key``), so a re-send after a lost answer gets HAVN's original
   transaction back and no second commission;
3. records the outcome (only if it still holds the claim) and commits, then
   sends ``transaction_sent`` / ``transaction_failed``.

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
spent. A ``sending`` row whose claim is older than :func:`lease_seconds` (a
crashed worker) is due again.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

import sqlalchemy as sa
import sqlalchemy.orm
from flask import current_app

from .currency import Conversion, failure_details, parse_rate, rate_text, with_audit
from .errors import (
    HAVNAPIError,
    HAVNAuthError,
    HAVNConfigError,
    HAVNConflictError,
    HAVNError,
    HAVNNetworkError,
    HAVNNotFoundError,
    HAVNRateLimitError,
    HAVNValidationError,
)
from .models import DELIVERY_STATES, utcnow
from .signals import conversion_failed, transaction_failed, transaction_sent

__all__ = [
    "deliver",
    "deliver_inline",
    "deliver_due",
    "run_worker",
    "claim",
    "claim_next",
    "count_due",
    "requeue_dead",
    "status_report",
    "retry_delay",
    "lease_seconds",
    "classify_error",
    "new_worker_id",
    "current_state",
    "money_fields",
]

logger = logging.getLogger("flask_havn.delivery")

#: Delivery states a claim may start from (``sending`` only once its lease has run out).
_CLAIMABLE = ("pending", "failed")


def current_state(app: Any = None) -> Any:
    """The HAVN state of ``app`` (default: the current app), which must have a database."""
    from .extension import get_state  # the extension imports the services, not the other way round

    state = get_state(app)
    if state.models is None or state.db is None:
        raise HAVNConfigError(
            "flask_havn runs client-only on this app, so it keeps no projects or payments: pass your "
            "Flask-SQLAlchemy instance, HAVN(app, db=db), to use them."
        )
    return state


def new_worker_id() -> str:
    """A claim owner name: host, process, thread and a random suffix (≤ 64 characters)."""
    host = socket.gethostname()[:24]
    return f"{host}:{os.getpid()}:{threading.get_ident() % 100000}:{uuid.uuid4().hex[:8]}"


def retry_delay(attempts: int, base: float, maximum: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``min(maximum, base * 2**(attempts-1))``."""
    exponent = max(0, attempts - 1)
    if base <= 0:
        return 0.0
    # Cap the exponent so a huge attempt count cannot overflow the float.
    return float(min(maximum, base * (2 ** min(exponent, 64))))


def lease_seconds(config: Any) -> float:
    """How long a ``sending`` claim is honoured before the row counts as abandoned.

    Ten times the client timeout, and never less than one full client call
    with all its retries plus a minute of backoff (a live worker is still
    waiting for HAVN well within that).
    """
    one_call = (config.max_retries + 1) * config.timeout + 60.0
    return max(10.0 * config.timeout, one_call)


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


def _due(Payment: Any, now: datetime, lease: float) -> Any:
    """SQL condition: the payment is completed and may be claimed at ``now``."""
    stale = now - timedelta(seconds=lease)
    return sa.and_(
        Payment.status == "completed",
        sa.or_(
            sa.and_(
                Payment.delivery_state.in_(_CLAIMABLE),
                sa.or_(Payment.next_attempt_at.is_(None), Payment.next_attempt_at <= now),
            ),
            sa.and_(
                Payment.delivery_state == "sending",
                sa.or_(Payment.claimed_at.is_(None), Payment.claimed_at <= stale),
            ),
        ),
    )


def _is_postgres(state: Any) -> bool:
    return state.db.session.get_bind().dialect.name == "postgresql"


def _claim_update(state: Any, payment_id: int, worker_id: str, now: datetime) -> bool:
    """The conditional UPDATE that takes the row (rowcount 1 = ours). Does not commit."""
    Payment = state.models.Payment
    stmt = (
        sa.update(Payment)
        .where(Payment.id == payment_id, _due(Payment, now, lease_seconds(state.config)))
        .values(delivery_state="sending", claimed_by=worker_id, claimed_at=now,
                attempts=Payment.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return state.db.session.execute(stmt).rowcount == 1


def claim(payment_id: int, *, worker_id: str, now: Optional[datetime] = None, state: Any = None) -> bool:
    """Take ``payment_id`` for delivery if it is due; commit; ``True`` if this caller holds it now."""
    state = state or current_state()
    now = now or utcnow()
    session = state.db.session
    Payment = state.models.Payment
    try:
        if _is_postgres(state):
            locked = session.execute(
                sa.select(Payment.id)
                .where(Payment.id == payment_id, _due(Payment, now, lease_seconds(state.config)))
                .with_for_update(skip_locked=True)
            ).scalar()
            if locked is None:
                session.rollback()
                return False
        won = _claim_update(state, payment_id, worker_id, now)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return won


def claim_next(*, worker_id: str, now: Optional[datetime] = None, exclude: Iterable[int] = (),
               state: Any = None) -> Optional[int]:
    """Claim the oldest due payment not in ``exclude``; its id, or ``None`` when nothing is due."""
    state = state or current_state()
    now = now or utcnow()
    session = state.db.session
    Payment = state.models.Payment
    skip = list(exclude)
    lease = lease_seconds(state.config)
    base = sa.select(Payment.id).where(_due(Payment, now, lease))
    if skip:
        base = base.where(Payment.id.not_in(skip))
    base = base.order_by(Payment.id)
    try:
        if _is_postgres(state):
            payment_id = session.execute(base.limit(1).with_for_update(skip_locked=True)).scalar()
            if payment_id is None:
                session.rollback()
                return None
            won = _claim_update(state, payment_id, worker_id, now)
            session.commit()
            return payment_id if won else None
        while True:
            candidates = list(session.execute(base.limit(20)).scalars())
            session.rollback()  # end the read before writing (SQLite: no lock upgrade races)
            if not candidates:
                return None
            # Workers start at different rows of the oldest twenty, so they rarely race for one row.
            random.shuffle(candidates)
            for payment_id in candidates:
                won = _claim_update(state, payment_id, worker_id, now)
                session.commit()
                if won:
                    return payment_id
            # Every candidate went to another worker: look again (they are no longer due).
    except Exception:
        session.rollback()
        raise


def count_due(*, now: Optional[datetime] = None, state: Any = None) -> int:
    """How many payments may be claimed at ``now``."""
    state = state or current_state()
    Payment = state.models.Payment
    query = sa.select(sa.func.count()).select_from(Payment).where(
        _due(Payment, now or utcnow(), lease_seconds(state.config)))
    count = int(state.db.session.execute(query).scalar() or 0)
    state.db.session.rollback()
    return count


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


def _send(state: Any, payment: Any) -> Any:
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
        **money_fields(payment),
    )


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _accepted_currency(payment: Any, transaction: Mapping[str, Any]) -> Dict[str, Any]:
    """Audit columns from HAVN's acceptance of a non-USD payment (nothing for USD)."""
    if payment.conversion_mode is None:
        return {}
    values: Dict[str, Any] = {"conversion_verdict": "accepted"}
    usd = _int(transaction.get("amount_usd"))
    if usd is None and transaction.get("currency") == "USD":
        usd = _int(transaction.get("amount"))
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


def _outcome(state: Any, payment: Any, result: Any, error: Optional[BaseException],
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


def deliver(payment_id: int, *, now: Optional[datetime] = None, worker_id: Optional[str] = None) -> Any:
    """Claim, send and record one payment; return the Payment row (whatever happened).

    The unit a task queue calls (inside ``app.app_context()``). A payment that
    is not due — already sent, not completed, claimed by another worker,
    waiting for ``next_attempt_at`` — is returned untouched. HAVN errors are
    recorded on the row, not raised; only an unknown id raises
    (:class:`HAVNValidationError` on ``payment_id``). ``now`` (naive UTC)
    replaces the clock, for tests and for replays.
    """
    state = current_state()
    session = state.db.session
    Payment = state.models.Payment
    if isinstance(payment_id, bool) or not isinstance(payment_id, int):
        raise HAVNValidationError("payment_id", "must be the integer id of a payment")
    payment = session.get(Payment, payment_id) if payment_id < 2 ** 31 else None
    if payment is None:
        raise HAVNValidationError("payment_id", f"no payment with id {payment_id}; record it first "
                                  "with havn.record_payment()")
    worker_id = worker_id or new_worker_id()
    if not claim(payment_id, worker_id=worker_id, now=now or utcnow(), state=state):
        session.refresh(payment)
        return payment
    return _send_and_record(payment_id, worker_id, now=now)


def deliver_inline(payment: Any) -> Any:
    """:func:`deliver` for the request that recorded ``payment``: never raises into the host's request.

    Bounded by the client's timeout and retries; any failure is logged and
    left on the row (``failed`` with ``next_attempt_at``) for the worker.
    """
    state = current_state()
    try:
        return deliver(payment.id)
    except Exception:
        logger.exception("inline delivery of payment %s failed; `flask havn deliver` will retry it", payment.id)
        state.db.session.rollback()
        try:
            state.db.session.refresh(payment)
        except Exception:  # pragma: no cover - the database itself is gone
            pass
        return payment


def deliver_due(*, now: Optional[datetime] = None, concurrency: int = 1, limit: Optional[int] = None,
                on_delivered: Optional[Callable[[Any], None]] = None) -> Dict[str, int]:
    """One pass: deliver every due payment, each at most once; counts by resulting state.

    ``now`` (naive UTC) replaces the clock when deciding what is due (default:
    the time of each claim); payments recorded during the pass may be picked up.

    ``concurrency`` threads each claim rows (each in its own app context).
    ``limit`` stops after that many deliveries. ``on_delivered(payment)`` is
    called after each one (from the worker threads; keep it thread-safe).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise HAVNValidationError("concurrency", "must be a whole number of at least 1")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    current_state()
    lock = threading.Lock()
    processed: Set[int] = set()
    counts: Dict[str, int] = {name: 0 for name in DELIVERY_STATES if name != "pending"}
    errors: List[BaseException] = []

    def work() -> None:
        worker_id = new_worker_id()
        with app.app_context():
            while True:
                with lock:
                    if errors or (limit is not None and len(processed) >= limit):
                        return
                    skip = list(processed)
                payment_id = claim_next(worker_id=worker_id, now=now, exclude=skip)
                if payment_id is None:
                    return
                with lock:
                    processed.add(payment_id)
                payment = _send_and_record(payment_id, worker_id)
                with lock:
                    counts[payment.delivery_state] = counts.get(payment.delivery_state, 0) + 1
                if on_delivered is not None:
                    on_delivered(payment)

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:  # surfaced in the calling thread below
            with lock:
                errors.append(exc)

    if concurrency == 1:
        work()
    else:
        threads = [threading.Thread(target=guarded, name=f"havn-deliver-{n}", daemon=True)
                   for n in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
    return counts


def _send_and_record(payment_id: int, worker_id: str, *, now: Optional[datetime] = None) -> Any:
    """Send a payment ``worker_id`` has claimed and record the outcome."""
    state = current_state()
    session = state.db.session
    Payment = state.models.Payment
    # Fresh from the database (the claim just committed), with its project in the same query.
    payment = session.get(Payment, payment_id, options=[sa.orm.joinedload(Payment.project)],
                          populate_existing=True)
    result: Any = None
    error: Optional[BaseException] = None
    try:
        result = _send(state, payment)
    except Exception as exc:
        error = exc
        if not isinstance(exc, HAVNError):
            logger.exception("unexpected error delivering payment %s", payment_id)
    return _record(state, payment, worker_id, result, error, now=now)


def _record(state: Any, payment: Any, worker_id: str, result: Any, error: Optional[BaseException],
            now: Optional[datetime] = None) -> Any:
    """Write an attempt's outcome if ``worker_id`` still holds the claim; commit; signal.

    The row may have moved on while HAVN answered: HAVN's own event (the
    webhook receiver) may already have recorded the same verdict — then ours is
    written too — or a different one (``sent`` while our answer was lost), or
    the lease ran out and another worker holds it. Then only our claim is
    released and nothing else is written or signalled.
    """
    session = state.db.session
    Payment = state.models.Payment
    finished = now or utcnow()
    values, failure = _outcome(state, payment, result, error, finished)
    values.update(claimed_by=None, claimed_at=None, updated_at=finished)
    target = values["delivery_state"]
    mine = sa.and_(Payment.id == payment.id, Payment.claimed_by == worker_id)

    def write(where: Any, new_values: Mapping[str, Any]) -> bool:
        return session.execute(sa.update(Payment).where(where).values(**new_values)
                               .execution_options(synchronize_session=False)).rowcount == 1

    announce = False
    try:
        # First "sending" → target: if that moved the row, this attempt is the first to record its
        # verdict. Else HAVN's event may have recorded the same verdict already: write ours too.
        first = write(sa.and_(mine, Payment.delivery_state == "sending"), values)
        held = first or write(sa.and_(mine, Payment.delivery_state == target), values)
        if not held:
            write(mine, {"claimed_by": None, "claimed_at": None})
        announce = first and target == "conversion_failed"
        if announce:
            session.refresh(payment)
            _announce_conversion_failure(payment)
        session.commit()
    except Exception as exc:
        session.rollback()
        if announce:
            _conversion_receiver_failed(state, payment, worker_id, exc, finished)
        raise
    session.refresh(payment)
    if not held:
        logger.warning("payment %s: it changed while %s was delivering it (now %s; claim expired or HAVN's event "
                       "recorded it first); this attempt's %s answer is dropped (HAVN's idempotency keeps it to "
                       "one transaction)", payment.id, worker_id, payment.delivery_state, values["delivery_state"])
        return payment
    logger.info("payment %s -> %s (attempt %s)%s", payment.id, payment.delivery_state, payment.attempts,
                f": {payment.last_error}" if payment.last_error else "")
    sender = current_app._get_current_object()  # type: ignore[attr-defined]
    if failure is None:
        transaction_sent.send(sender, payment=payment, result=result)
    else:
        transaction_failed.send(sender, payment=payment, error=failure)
    return payment


def _announce_conversion_failure(payment: Any) -> None:
    """Send ``conversion_failed`` for HAVN's synchronous FAILED answer, inside the recording transaction.

    Like the webhook receiver does for the event: what receivers write through
    ``db.session`` commits with the verdict, and a receiver that raises undoes
    it (see :func:`_conversion_receiver_failed`). The event, when it arrives,
    finds the payment already ``conversion_failed`` and does not announce again.
    """
    details = dict(payment.havn_details or {})
    sender = current_app._get_current_object()  # type: ignore[attr-defined]
    conversion_failed.send(sender, event=None, payment=payment,
                           reason=details.get("reason") or payment.last_error, details=details)


def _conversion_receiver_failed(state: Any, payment: Any, worker_id: str, error: BaseException,
                                now: datetime) -> None:
    """A ``conversion_failed`` receiver raised: nothing was recorded; leave the payment to be asked again.

    It becomes ``failed`` with a retry time (or ``dead`` when its attempts are
    spent), so the next attempt re-sends the same payload, HAVN answers FAILED
    again and the signal is sent again.
    """
    Payment = state.models.Payment
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
        state.db.session.execute(
            sa.update(Payment).where(Payment.id == payment.id, Payment.claimed_by == worker_id,
                                     Payment.delivery_state == "sending")
            .values(**values).execution_options(synchronize_session=False))
        state.db.session.commit()
    except Exception:  # pragma: no cover - the database itself is failing; the lease frees the row
        state.db.session.rollback()
        logger.exception("payment %s: could not record the receiver's failure", payment.id)


def run_worker(*, interval: float = 5.0, concurrency: int = 1, stop: Optional[threading.Event] = None,
               sleep: Callable[[float], None] = time.sleep,
               on_pass: Optional[Callable[[Dict[str, int]], None]] = None) -> None:
    """Deliver due payments pass after pass, sleeping ``interval`` seconds between idle passes.

    Runs until ``stop`` is set (or Ctrl-C in the CLI).
    """
    stop = stop or threading.Event()
    while not stop.is_set():
        counts = deliver_due(concurrency=concurrency)
        if on_pass is not None:
            on_pass(counts)
        if not any(counts.values()) and not stop.is_set():
            sleep(interval)


def requeue_dead(*, state: Any = None) -> int:
    """Put every ``dead`` payment back in line (``pending``, attempts reset); how many."""
    state = state or current_state()
    Payment = state.models.Payment
    now = utcnow()
    result = state.db.session.execute(
        sa.update(Payment)
        .where(Payment.delivery_state == "dead", Payment.status == "completed")
        .values(delivery_state="pending", attempts=0, next_attempt_at=None, claimed_by=None, claimed_at=None,
                updated_at=now)
        .execution_options(synchronize_session=False)
    )
    state.db.session.commit()
    return int(result.rowcount or 0)


def status_report(*, now: Optional[datetime] = None, state: Any = None) -> Dict[str, Any]:
    """Counts of completed payments by delivery state, how many are due, and the oldest undelivered."""
    state = state or current_state()
    Payment = state.models.Payment
    session = state.db.session
    rows = session.execute(
        sa.select(Payment.delivery_state, sa.func.count())
        .where(Payment.status == "completed")
        .group_by(Payment.delivery_state)
    ).all()
    by_state = {name: 0 for name in DELIVERY_STATES}
    for name, count in rows:
        by_state[name] = int(count)
    oldest = session.execute(
        sa.select(Payment.id, Payment.created_at)
        .where(Payment.status == "completed", Payment.delivery_state.in_(("pending", "failed", "sending")))
        .order_by(Payment.created_at, Payment.id)
        .limit(1)
    ).first()
    not_completed = int(session.execute(
        sa.select(sa.func.count()).select_from(Payment).where(Payment.status != "completed")).scalar() or 0)
    session.rollback()
    return {
        "by_state": by_state,
        "due": count_due(now=now, state=state),
        "oldest_pending": None if oldest is None else {"id": oldest[0], "created_at": oldest[1]},
        "not_completed": not_completed,
    }

"""The ``Payments`` service: record a project's payments (the outbox rows), complete and retry them.

Reached as ``havn.payments`` (the current app's) or ``get_state(app).payments``.
Conventions as in :mod:`flask_havn.projects`: an app context, a row or an
integer id, the host's ``db.session`` committed, errors that name the Python
argument and say what to do, nothing written on bad input.
"""
from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from . import rules
from .currency import MAX_ORIGINAL_AMOUNT, convert_to_usd, with_audit
from .errors import HAVNConflictError, HAVNValidationError
from .models import DELIVERY_STATES, PAYMENT_STATUSES, column_length, utcnow
from .outbox.backlog import REQUEUED
from .projects import commit, get_row
from .rows import PaymentRow
from .referrals import first_payment_voucher, use_referral_voucher

if TYPE_CHECKING:  # pragma: no cover
    from .state import HAVNState

__all__ = ["Payments", "Recorded", "PAYMENT_FIELDS", "generate_gateway_id", "MAX_ORIGINAL_AMOUNT"]

#: Optional text arguments of :meth:`Payments.record`; each is at most as long as its column.
_TEXT_FIELDS = ("invoice_id", "customer_id", "voucher_code", "transaction_type", "payment_gateway")
#: Keyword arguments :meth:`Payments.record` accepts besides ``project``, ``amount`` and ``currency``.
PAYMENT_FIELDS = ("customer_email", "status", "invoice_id", "customer_id", "voucher_code", "transaction_type",
                  "payment_gateway", "payment_gateway_transaction_id", "custom_fields", "subtotal")


def generate_gateway_id() -> str:
    """A gateway transaction id for a payment whose host has none: its idempotent identity at HAVN."""
    return "havn_" + uuid.uuid4().hex


class Recorded(NamedTuple):
    """What :meth:`Payments.record_or_get` did: the payment, and whether this call created it.

    ``created`` is ``False`` when the ``payment_gateway_transaction_id`` was
    already recorded — by an earlier call or by a request racing this one —
    and the existing payment is returned.
    """

    payment: PaymentRow
    created: bool


#: A client-converted payment's own amount: HAVN's cap applies to the USD cents sent, not to this.
_check_original_amount = functools.partial(rules.check_amount, maximum=MAX_ORIGINAL_AMOUNT,
                                           over="; split the payment")


def _check_sent_amount(value: Any, field: str, currency: Optional[str]) -> int:
    """An amount sent to HAVN as is (USD, or server mode): HAVN's cap, named with the way out."""
    try:
        return rules.check_amount(value, field)
    except HAVNValidationError as exc:
        if currency in (None, "USD") or not isinstance(value, int) or value <= 0:
            raise
        raise HAVNValidationError(
            field, f"is {value} minor units of {currency}, but HAVN takes at most {rules.MAX_AMOUNT} minor units "
            "in the currency it is sent in (HAVN_CURRENCY_CONVERSION = \"server\" sends it as is): split the "
            "payment, or set HAVN_CURRENCY_CONVERSION = \"client\" so USD cents are sent") from exc


class Payments:
    """Payments of one app's projects (``havn.payments``)."""

    def __init__(self, state: "HAVNState") -> None:
        self._state = state

    def __repr__(self) -> str:
        return "<Payments>"

    @property
    def _model(self) -> Any:
        return self._state.models.Payment  # type: ignore[union-attr]

    # -- reading -----------------------------------------------------------

    def get(self, payment: Any) -> PaymentRow:
        """The payment row for a row or an id; an unknown id raises :class:`HAVNRecordNotFoundError`."""
        return get_row(self._state, self._model, payment, "payment",
                       "record it first with havn.payments.record() or POST /payments")

    def list(self, *, delivery_state: Optional[str] = None, project: Any = None, limit: int = 100,
             offset: int = 0) -> Tuple[List[PaymentRow], int]:
        """One page of payments, newest first, and how many match in all.

        ``delivery_state`` (``pending``, ``sent``, ``dead``…) and ``project`` (a
        row or id) filter.
        """
        Payment = self._model
        query = sa.select(Payment)
        if delivery_state is not None:
            if delivery_state not in DELIVERY_STATES:
                raise HAVNValidationError("delivery_state", f"must be one of {', '.join(DELIVERY_STATES)}")
            query = query.where(Payment.delivery_state == delivery_state)
        if project is not None:
            query = query.where(Payment.project_id == self._state.projects.get(project).id)
        session = self._state.session
        total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        rows = session.execute(query.order_by(Payment.id.desc()).offset(offset).limit(limit)).scalars().all()
        return list(rows), int(total)

    # -- recording ---------------------------------------------------------

    def validate(self, project: Any, amount: Any, currency: Any = "USD", **fields: Any) -> Dict[str, str]:
        """Every problem of a payment :meth:`record` would refuse, by argument name; ``{}`` when none.

        Writes nothing and sends nothing. Takes the same arguments as :meth:`record`.
        """
        errors = rules.FieldErrors()
        self._checked(errors, project, amount, currency, fields)
        return dict(errors.errors)

    def record(self, project: Any, amount: int, currency: str = "USD", *, customer_email: Optional[str] = None,
               status: str = "completed", invoice_id: Optional[str] = None, customer_id: Optional[str] = None,
               voucher_code: Optional[str] = None, transaction_type: Optional[str] = None,
               payment_gateway: Optional[str] = None, payment_gateway_transaction_id: Optional[str] = None,
               custom_fields: Optional[Mapping[str, Any]] = None, subtotal: Optional[int] = None) -> PaymentRow:
        """Record a payment of ``project`` (the outbox row); a completed one is then delivered. The row.

        ``amount`` is integer minor units of ``currency`` after discount
        (``subtotal``: before). ``customer_email`` is required (HAVN keys new vs
        recurring customers on it). ``payment_gateway_transaction_id`` is the
        payment's idempotent identity at HAVN: the gateway's own id, or one is
        generated. Recording the same id again returns the existing payment (and
        completes it if it was pending and ``status`` is ``completed``); the
        same id with other content raises :class:`HAVNConflictError`. Use
        :meth:`record_or_get` to learn whether this call created the row. With
        ``HAVN_DELIVERY = "inline"`` a completed payment is sent right after the
        commit; a failure there is left on the row, never raised.

        A non-USD payment is converted as ``HAVN_CURRENCY_CONVERSION`` says, fixed
        on the row when it is recorded: ``"server"`` sends the original amount
        for HAVN to convert; ``"client"`` converts now (rate from
        ``@havn.rate_provider``, then ``HAVN_EXCHANGE_RATES``; USD cents half-up)
        and stores the rate, its source and the USD cents, which every delivery
        attempt then sends with the audit trail in ``custom_fields``. In client
        mode, own ``custom_fields`` or a ``subtotal`` overflow HAVN's 3-entry cap
        and raise :class:`HAVNValidationError`; a currency without a rate raises
        :class:`HAVNConfigError`. Nothing is written in either case. HAVN's cap
        of 1,000,000,000 minor units applies to the amount *sent*: the original
        amount in USD or server mode, the USD cents in client mode (whose
        original amount may be up to :data:`MAX_ORIGINAL_AMOUNT`).

        Every text must fit its column of ``havn.models.Payment`` (checked here,
        so PostgreSQL never refuses it half-way) and be storable text (no NUL, no
        lone surrogate). ``custom_fields`` come back in HAVN's events, so they are
        bounded to what the webhook receiver accepts (see
        :func:`flask_havn.rules.check_recorded_custom_fields`: keys up to 40
        characters, text up to 500, integers within 64 bits, 2 KB in all). A
        payment recorded while ``HAVN_TEST_MODE`` is on is marked ``test_mode``.
        """
        return self.record_or_get(
            project, amount, currency, customer_email=customer_email, status=status, invoice_id=invoice_id,
            customer_id=customer_id, voucher_code=voucher_code, transaction_type=transaction_type,
            payment_gateway=payment_gateway, payment_gateway_transaction_id=payment_gateway_transaction_id,
            custom_fields=custom_fields, subtotal=subtotal).payment

    def record_or_get(self, project: Any, amount: Any, currency: Any = "USD", **fields: Any) -> Recorded:
        """:meth:`record`, also saying whether this call created the row (``Recorded(payment, created)``).

        Only the payment's own insert runs in a savepoint: when a concurrent
        request recorded the same gateway id first, that insert alone is undone,
        the host's other pending rows (an order added in the same request) stay
        and are committed, and ``created`` is ``False``.
        """
        with self._state.shared_connection():  # in-memory SQLite: the sandbox's events wait for this call
            return self._record_or_get(project, amount, currency, **fields)

    def _record_or_get(self, project: Any, amount: Any, currency: Any = "USD", **fields: Any) -> Recorded:
        unknown = sorted(set(fields) - set(PAYMENT_FIELDS))
        if unknown:
            raise TypeError(f"record() got unexpected keyword argument(s): {', '.join(unknown)}")
        state = self._state
        session = state.session
        errors = rules.FieldErrors()
        values = self._checked(errors, project, amount, currency, fields)
        errors.raise_if_any()
        values["payment_gateway_transaction_id"] = values["payment_gateway_transaction_id"] or generate_gateway_id()
        existing = self._by_gateway_id(values["payment_gateway_transaction_id"])
        if existing is None:
            values.update(self._conversion(values))
            # Referral links: a project's first payment carries the voucher its link brought (once).
            referred = first_payment_voucher(state, values["project_id"])
            filled = referred is not None and values["voucher_code"] is None
            if filled:
                values["voucher_code"] = referred.referral_voucher_code
            payment = self._model(delivery_state="pending", attempts=0, test_mode=state.config.test_mode, **values)
            if payment.status == "completed":
                payment.completed_at = utcnow()
            try:
                with session.begin_nested():
                    if referred is not None:
                        use_referral_voucher(state, referred, payment if filled else None)
                    session.add(payment)
            except IntegrityError:
                # Another request recorded the same gateway id first: only our insert was undone.
                existing = self._by_gateway_id(values["payment_gateway_transaction_id"])
                if existing is None:
                    raise
            else:
                commit(session)
                if payment.status == "completed":
                    state.outbox.schedule(payment)
                return Recorded(payment, True)
        payment = self._same_payment(existing, values)
        commit(session)
        return Recorded(payment, False)

    def _by_gateway_id(self, gateway_id: str) -> Any:
        return self._model.query.filter_by(payment_gateway_transaction_id=gateway_id).first()

    def _checked(self, errors: rules.FieldErrors, project: Any, amount: Any, currency: Any,
                 fields: Mapping[str, Any]) -> Dict[str, Any]:
        """Every argument checked and normalised into column values (problems go to ``errors``)."""
        project_row = errors.check(self._state.projects.get, project)
        values = self._check_payment(errors, amount, currency, fields)
        values["project_id"] = project_row.id if project_row is not None else None
        return values

    def _conversion(self, values: Mapping[str, Any]) -> Dict[str, Any]:
        """The currency audit columns of a new payment (nothing for USD).

        Server mode only notes the mode: HAVN converts. Client mode converts now,
        once: the rate (``@havn.rate_provider``, then ``HAVN_EXCHANGE_RATES``) and
        the USD cents are stored on the row, and every delivery attempt sends
        exactly those, so the idempotent payload never changes. A payment whose
        audit trail would not fit HAVN's 3 ``custom_fields`` entries, or whose
        USD amount HAVN cannot take, is refused here, before anything is written.
        """
        state = self._state
        if values["currency"] == "USD":
            return {}
        if state.config.currency_conversion == "server":
            return {"conversion_mode": "server"}
        rate, source = state.resolve_rate(values["currency"])
        conversion = convert_to_usd(values["amount"], values["currency"], rate, subtotal=values["subtotal"],
                                    source=source)
        with_audit(values["custom_fields"], conversion.audit_fields())
        for usd, field in ((conversion.amount_usd, "amount"), (conversion.subtotal_usd, "subtotal")):
            if usd is not None and not 1 <= usd <= rules.MAX_AMOUNT:
                raise HAVNValidationError(
                    field, f"is {usd} USD cents at {conversion.rate_text} USD per {values['currency']} ({source}); "
                    f"HAVN takes 1 to {rules.MAX_AMOUNT} USD cents: change the amount, or set "
                    "HAVN_CURRENCY_CONVERSION = \"server\" to let HAVN convert")
        return {"conversion_mode": "client", "exchange_rate": conversion.rate_text, "exchange_rate_source": source,
                "amount_usd": conversion.amount_usd, "subtotal_usd": conversion.subtotal_usd}

    def _same_payment(self, existing: Any, values: Dict[str, Any]) -> Any:
        """An already recorded gateway id: the same payment (maybe now completed), or a 409."""
        identity = ("project_id", "amount", "currency", "customer_email", "payment_gateway")
        different = [key for key in identity if getattr(existing, key) != values[key]]
        gateway_id = values["payment_gateway_transaction_id"]
        if different:
            raise HAVNConflictError(
                f"payment_gateway_transaction_id {gateway_id!r} is already recorded as payment {existing.id} with a "
                f"different {', '.join(different)}; use a new id for a new charge", status_code=409)
        if values["status"] == "completed" and existing.status == "pending":
            return self.complete(existing)
        if values["status"] != existing.status:
            raise HAVNConflictError(
                f"payment_gateway_transaction_id {gateway_id!r} is already recorded as payment {existing.id} with "
                f"status {existing.status}; status changes are not accepted by re-posting it as {values['status']} "
                f"(complete a pending payment with POST /payments/{existing.id}/complete or "
                "havn.payments.complete())", status_code=409)
        return existing

    def _check_payment(self, errors: rules.FieldErrors, amount: Any, currency: Any,
                       fields: Mapping[str, Any]) -> Dict[str, Any]:
        config = self._state.config
        try:
            code: Optional[str] = rules.check_currency(currency, "currency")
        except HAVNValidationError:
            code = None  # reported below, after the amount
        # Client mode sends USD cents: HAVN's cap applies to those (in _conversion), not to the original.
        converted = code not in (None, "USD") and config.currency_conversion == "client"
        check = _check_original_amount if converted else functools.partial(_check_sent_amount, currency=code)
        values: Dict[str, Any] = {
            "amount": errors.check(check, amount, "amount"),
            "currency": errors.check(rules.check_currency, currency, "currency"),
        }
        status = fields.get("status", "completed")
        if status not in PAYMENT_STATUSES:
            errors.add("status", f"must be one of {', '.join(PAYMENT_STATUSES)}")
        values["status"] = status
        Payment = self._model
        email = fields.get("customer_email")
        if email is None:
            errors.add("customer_email", "is required: HAVN needs the paying customer's email address")
        else:
            values["customer_email"] = errors.check(
                rules.check_email, email.strip() if isinstance(email, str) else email, "customer_email",
                max_length=column_length(Payment, "customer_email"))
        for key in _TEXT_FIELDS:
            values[key] = errors.check(rules.optional_text, fields.get(key), key, column_length(Payment, key))
        values["payment_gateway"] = (values["payment_gateway"] or config.payment_gateway).upper()
        gateway_id = fields.get("payment_gateway_transaction_id")
        values["payment_gateway_transaction_id"] = None
        if gateway_id is not None:
            values["payment_gateway_transaction_id"] = errors.check(
                rules.check_text, gateway_id, "payment_gateway_transaction_id", strip=True,
                max_length=column_length(Payment, "payment_gateway_transaction_id"))
        custom = fields.get("custom_fields")
        values["custom_fields"] = None if custom is None else errors.check(
            rules.check_recorded_custom_fields, custom, "custom_fields")
        subtotal = fields.get("subtotal")
        values["subtotal"] = None
        if subtotal is not None:
            values["subtotal"] = errors.check(check, subtotal, "subtotal")
            if values["subtotal"] is not None and values["amount"] is not None and values["subtotal"] < values["amount"]:
                errors.add("subtotal", "must be at least amount (it is the price before discount)")
        return values

    # -- changing ----------------------------------------------------------

    def complete(self, payment: Any) -> PaymentRow:
        """Mark a pending payment completed (its money arrived) and deliver it; idempotent."""
        state = self._state
        payment = self.get(payment)
        if payment.status not in ("pending", "completed"):
            raise HAVNValidationError("status", f"payment {payment.id} is {payment.status}; only a pending "
                                      "payment can be completed")
        if payment.status == "pending":
            payment.status = "completed"
            payment.completed_at = utcnow()
            commit(state.session)
        if payment.delivery_state in ("pending", "failed"):
            state.outbox.schedule(payment)
        return payment

    def retry(self, payment: Any) -> PaymentRow:
        """Put a ``failed`` or ``dead`` payment back in line with a fresh attempt budget; deliver if inline.

        The reset is one conditional UPDATE (``WHERE delivery_state IN
        ('failed', 'dead')``), so it never overwrites a worker that claimed the
        row meanwhile. A ``sent`` payment raises :class:`HAVNConflictError`
        (nothing to retry); so does ``conversion_failed`` (HAVN keeps its FAILED
        verdict for that id: record a new payment), and a payment a worker is
        sending right now. A payment that is not completed raises
        :class:`HAVNValidationError`.
        """
        state = self._state
        session = state.session
        payment = self.get(payment)
        if payment.status != "completed":
            raise HAVNValidationError("status", f"payment {payment.id} is {payment.status}; complete it first "
                                      f"(POST /payments/{payment.id}/complete)")
        Payment = self._model
        reset = session.execute(
            sa.update(Payment)
            .where(Payment.id == payment.id, Payment.status == "completed",
                   Payment.delivery_state.in_(("failed", "dead")))
            .values(updated_at=utcnow(), **REQUEUED)
            .execution_options(synchronize_session=False)).rowcount == 1
        commit(session)
        session.refresh(payment)
        if not reset:
            self._why_not_retried(payment)
        if payment.delivery_state == "pending":
            state.outbox.schedule(payment)
        return payment

    @staticmethod
    def _why_not_retried(payment: Any) -> None:
        """Raise what stands in the way of retrying ``payment`` (nothing for a payment still pending)."""
        if payment.delivery_state == "sent":
            raise HAVNConflictError(f"payment {payment.id} was already delivered to HAVN as transaction "
                                    f"{payment.havn_transaction_id}; there is nothing to retry", status_code=409)
        if payment.delivery_state == "conversion_failed":
            raise HAVNConflictError(
                f"HAVN recorded payment {payment.id} as FAILED (currency conversion) and answers the same for its "
                "payment_gateway_transaction_id; record a new payment with a new id instead", status_code=409)
        if payment.delivery_state == "sending":
            raise HAVNConflictError(f"payment {payment.id} is being delivered by a worker right now "
                                    f"({payment.claimed_by}); look at it again in a moment", status_code=409)

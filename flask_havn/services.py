"""The flows hosts call: projects, owner/member sync, payments and their delivery.

These methods are the public Python API of the extension (``havn.create_project(…)``,
``havn.record_payment(…)``…); the blueprint's routes and the ``flask havn`` commands
only call them. Each works on the current app (inside an app context), accepts a model
instance or an integer id, commits the host's ``db.session`` (so anything else pending
in it is committed too), and raises :class:`~flask_havn.errors.HAVNError` subclasses
whose message says what to do. Invalid input raises :class:`HAVNValidationError`
naming the field *before* anything is written; when several fields are wrong, the
error's ``errors`` attribute maps every field to its message. Signals are sent after
the commit that recorded what they announce.
"""
from __future__ import annotations

import functools
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from flask import current_app
from sqlalchemy.exc import IntegrityError

from . import rules
from .currency import MAX_ORIGINAL_AMOUNT, convert_to_usd, with_audit
from .delivery import current_state, deliver, deliver_inline
from .errors import HAVNAPIError, HAVNConfigError, HAVNConflictError, HAVNError, HAVNValidationError
from .models import PAYMENT_STATUSES, utcnow
from .signals import members_synced, project_synced

__all__ = ["HAVNServices", "MAX_MEMBERS_PER_CALL", "MAX_ORIGINAL_AMOUNT", "generate_gateway_id"]

#: Most users one :meth:`HAVNServices.sync_members` call accepts (they are sent in batches).
MAX_MEMBERS_PER_CALL = 10_000
#: HAVN's own ceiling for one bulk user-sync request (contract §3.5).
_HAVN_BULK_LIMIT = 50


def generate_gateway_id() -> str:
    """A gateway transaction id for a payment whose host has none: its idempotent identity at HAVN."""
    return "havn_" + uuid.uuid4().hex


class _Errors:
    """Collects one message per field, so a bad request is answered with all of its problems."""

    def __init__(self) -> None:
        self.errors: Dict[str, str] = {}

    def check(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except HAVNValidationError as exc:
            self.errors.setdefault(exc.field, exc.reason)
            return None

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, message)

    def raise_if_any(self) -> None:
        if not self.errors:
            return
        field, message = next(iter(self.errors.items()))
        more = len(self.errors) - 1
        if more:
            message += f" (and {more} more field{'s' if more > 1 else ''}: see .errors)"
        exc = HAVNValidationError(field, message)
        exc.errors = dict(self.errors)  # type: ignore[attr-defined]
        raise exc


def _check_original_amount(value: Any, field: str) -> int:
    """A client-converted payment's own amount: a positive integer of minor units, at most 10**15."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise HAVNValidationError(field, "must be an integer number of minor units (e.g. cents), not "
                                  f"{type(value).__name__}")
    if value <= 0:
        raise HAVNValidationError(field, "must be greater than 0")
    if value > MAX_ORIGINAL_AMOUNT:
        raise HAVNValidationError(field, f"must be at most {MAX_ORIGINAL_AMOUNT} minor units; split the payment")
    return value


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


def _optional_text(value: Any, field: str, max_length: int) -> Optional[str]:
    """``None`` or blank → ``None``; else a stripped string of at most ``max_length``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise HAVNValidationError(field, "must be a string")
    text = str(value).strip()
    if not text:
        return None
    if len(text) > max_length:
        raise HAVNValidationError(field, f"must be at most {max_length} characters")
    return text


#: Largest id a 32-bit INTEGER primary key holds; larger ids cannot exist.
_MAX_ID = 2 ** 31 - 1


def _check_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HAVNValidationError(field, "must be the integer id of an existing record")
    return value


def _sender() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _commit(session: Any) -> None:
    try:
        session.commit()
    except Exception:
        session.rollback()
        raise


def _get_row(model_name: str, value: Any, how_to_create: str) -> Any:
    """``value`` itself when it is a row of ``model_name``, else the row with that id (or a field error)."""
    state = current_state()
    model = getattr(state.models, model_name)
    if isinstance(value, model):
        return value
    field = f"{model_name.lower()}_id"
    row_id = _check_id(value, field)
    row = state.db.session.get(model, row_id) if row_id <= _MAX_ID else None
    if row is None:
        raise HAVNValidationError(field, f"no {model_name.lower()} with id {row_id}; {how_to_create}")
    return row


class HAVNServices:
    """Service methods mixed into :class:`flask_havn.HAVN` (``havn.create_project(…)``…)."""

    # -- lookups -----------------------------------------------------------

    def get_project(self, project: Any) -> Any:
        """The Project row for an instance or an id; unknown id → :class:`HAVNValidationError`."""
        return _get_row("Project", project, "create it first with havn.create_project() or POST /projects")

    def get_payment(self, payment: Any) -> Any:
        """The Payment row for an instance or an id; unknown id → :class:`HAVNValidationError`."""
        return _get_row("Payment", payment, "record it first with havn.record_payment() or POST /payments")

    # -- projects ----------------------------------------------------------

    def create_project(self, name: str, upline_referral_code: Optional[str] = None) -> Any:
        """Create a project; ``upline_referral_code`` is the code of the project that referred it.

        The code's format is checked here (3–50 characters, upper-cased); whether
        HAVN knows it is HAVN's to say when the owner is synced.
        """
        state = current_state()
        errors = _Errors()
        clean_name = errors.check(rules.check_text, name, "project_name", max_length=200, strip=True)
        upline = errors.check(rules.optional_code, upline_referral_code, "upline_referral_code", upper=True)
        errors.raise_if_any()
        project = state.models.Project(name=clean_name, upline_referral_code=upline, sync_state="pending")
        state.db.session.add(project)
        _commit(state.db.session)
        return project

    def downline_projects(self, project: Any) -> List[Any]:
        """The projects this project referred (their upline code is its referral code)."""
        project = self.get_project(project)
        if not project.referral_code:
            return []
        Project = current_state().models.Project
        return list(Project.query.filter_by(upline_referral_code=project.referral_code).order_by(Project.id))

    def sync_owner(self, project: Any, email: str, name: str) -> Any:
        """Sync the project's owner to HAVN; store and return the project with its referral code.

        The owner is synced with ``is_owner=True`` and the project's
        ``upline_referral_code`` as ``upline_code``. Syncing again is idempotent
        (HAVN returns the same code). Once synced, the owner cannot change: the
        code is in use. If HAVN refuses (e.g. 404: unknown upline code), the
        project is left ``failed`` with the message and the error is raised.
        Sends ``project_synced`` on success.
        """
        state = current_state()
        session = state.db.session
        Project, Member = state.models.Project, state.models.ProjectMember
        project = self.get_project(project)
        errors = _Errors()
        email = errors.check(rules.check_email, email.strip() if isinstance(email, str) else email, "email")
        name = errors.check(rules.check_text, name, "name", max_length=200, strip=True)
        errors.raise_if_any()
        email_key = email.lower()
        owner = Member.query.filter_by(project_id=project.id, role="owner").first()
        if owner is not None and owner.email_key != email_key and project.sync_state == "synced":
            raise HAVNValidationError("email", f"project {project.id} is already synced with another owner and its "
                                      f"referral code {project.referral_code} is in use; the owner cannot change")
        elsewhere = Member.query.filter(Member.email_key == email_key, Member.role == "owner",
                                        Member.project_id != project.id).first()
        if elsewhere is not None:
            raise HAVNValidationError("email", f"already owns project {elsewhere.project_id}; HAVN keeps one "
                                      "associate per email, so each project needs an owner of its own")
        member = Member.query.filter_by(project_id=project.id, email_key=email_key).first()
        if owner is not None and member is not None and owner is not member:
            raise HAVNValidationError("email", f"is a partner of project {project.id}; sync a different address "
                                      "as owner or remove the partner first")
        member = member or owner
        _commit(session)  # end the read: no transaction stays open while HAVN answers

        client = state.make_client()
        try:
            result = client.users.sync(email, name, is_owner=True, upline_code=project.upline_referral_code,
                                       create_associate=True)
            code = result.referral_code
            if not code:
                raise HAVNAPIError("HAVN synced the owner but returned no referral code; try again, or contact "
                                   "HAVN support if it persists", response=result.raw)
            clash = Project.query.filter(Project.referral_code == code, Project.id != project.id).first()
            if clash is not None:
                raise HAVNConflictError(
                    f"HAVN returned referral code {code}, which project {clash.id} already has; HAVN keys associates "
                    "by email, so sync this project with an owner address of its own", status_code=409)
        except HAVNError as exc:
            project.sync_state = "failed"
            project.last_error = exc.message
            self._upsert_owner(project, member, email, name, sync_state="failed", last_error=exc.message)
            _commit(session)
            raise
        project.referral_code = code
        project.havn_associate_id = result.associate.associate_id if result.associate else None
        project.sync_state = "synced"
        project.last_error = None
        project.synced_at = utcnow()
        self._upsert_owner(project, member, email, name, sync_state="synced", last_error=None,
                           havn_user_id=result.user_id)
        _commit(session)
        project_synced.send(_sender(), project=project, result=result)
        return project

    @staticmethod
    def _upsert_owner(project: Any, member: Any, email: str, name: str, **values: Any) -> Any:
        Member = current_state().models.ProjectMember
        if member is None:
            member = Member(project_id=project.id)
            current_state().db.session.add(member)
        member.email = email
        member.email_key = email.lower()
        member.name = name
        member.role = "owner"
        for key, value in values.items():
            setattr(member, key, value)
        return member

    def sync_members(self, project: Any, users: Sequence[Mapping[str, Any]], *,
                     on_batch: Optional[Callable[[int, int, Any], None]] = None) -> Any:
        """Sync a project's team as partners linked to its referral code; the merged BulkSyncResult.

        ``users`` is a list of ``{"email", "name"}``. Every entry is checked
        first (errors name ``users[3].email``…; nothing is written). Members
        are stored ``pending``, then sent in batches of ``HAVN_BULK_MAX_SIZE``
        with the project's ``referral_code`` and ``create_associate=False``;
        after each batch its members become ``synced`` or ``failed`` with
        HAVN's per-member error, and ``on_batch(batch_no, total_batches,
        batch_result)`` runs. Sends ``members_synced`` at the end. If a whole
        batch fails, members not yet synced are marked ``failed`` and the error
        is raised (``.partial_result`` holds what succeeded).
        """
        state = current_state()
        session = state.db.session
        Member = state.models.ProjectMember
        project = self.get_project(project)
        if not project.referral_code:
            raise HAVNValidationError("project_id", f"project {project.id} has no referral code yet; sync its "
                                      f"owner first (havn.sync_owner or POST /projects/{project.id}/sync)")
        batch_size = state.config.bulk_max_size
        if batch_size > _HAVN_BULK_LIMIT:
            raise HAVNConfigError(f"HAVN_BULK_MAX_SIZE is {batch_size} but HAVN accepts at most "
                                  f"{_HAVN_BULK_LIMIT} users per request; set it to {_HAVN_BULK_LIMIT} or less")
        entries = self._check_members(project, users)

        members: List[Any] = []
        for email, name in entries:
            member = Member.query.filter_by(project_id=project.id, email_key=email.lower()).first()
            if member is None:
                member = Member(project_id=project.id, email_key=email.lower(), role="partner")
                session.add(member)
            member.email = email
            member.name = name
            member.sync_state = "pending"
            member.last_error = None
            members.append(member)
        _commit(session)

        def record_batch(number: int, total: int, batch: Any) -> None:
            offset = (number - 1) * batch_size
            chunk = members[offset:offset + batch_size]
            failed: Dict[int, str] = {}
            for error in batch.errors:
                index = error.get("index")
                if index is None:
                    address = str(error.get("email") or "").lower()
                    index = next((i for i, m in enumerate(chunk) if m.email_key == address), None)
                if index is not None and 0 <= index < len(chunk):
                    failed[index] = str(error.get("error") or "HAVN refused this user")
            user_ids = {str(r.email or "").lower(): r.user_id for r in batch.results}
            for index, member in enumerate(chunk):
                if index in failed:
                    member.sync_state = "failed"
                    member.last_error = failed[index]
                else:
                    member.sync_state = "synced"
                    member.last_error = None
                    member.havn_user_id = user_ids.get(member.email_key) or member.havn_user_id
            _commit(session)
            if on_batch is not None:
                on_batch(number, total, batch)

        client = state.make_client()
        try:
            result = client.users.sync_bulk(
                [{"email": m.email, "name": m.name} for m in members],
                referral_code=project.referral_code, is_owner=False, create_associate=False,
                batch_size=batch_size, on_batch=record_batch,
            )
        except HAVNError as exc:
            session.rollback()
            for member in members:
                if member.sync_state == "pending":
                    member.sync_state = "failed"
                    member.last_error = exc.message
            _commit(session)
            raise
        members_synced.send(_sender(), project=project, members=members, result=result)
        return result

    @staticmethod
    def _check_members(project: Any, users: Any) -> List[Tuple[str, str]]:
        """``[(email, name)]`` from the caller's list, or a HAVNValidationError with every problem."""
        if isinstance(users, (str, bytes, Mapping)) or not isinstance(users, Sequence):
            raise HAVNValidationError("users", "must be a list of {\"email\", \"name\"} objects")
        if not users:
            raise HAVNValidationError("users", "must not be empty; pass at least one {\"email\", \"name\"}")
        if len(users) > MAX_MEMBERS_PER_CALL:
            raise HAVNValidationError("users", f"at most {MAX_MEMBERS_PER_CALL} per call; split the list")
        Member = current_state().models.ProjectMember
        owner = Member.query.filter_by(project_id=project.id, role="owner").first()
        errors = _Errors()
        seen: Dict[str, int] = {}
        entries: List[Tuple[str, str]] = []
        for index, user in enumerate(users):
            where = f"users[{index}]"
            if not isinstance(user, Mapping):
                errors.add(where, "must be an object with email and name")
                continue
            unknown = sorted(set(map(str, user)) - {"email", "name"})
            if unknown:
                errors.add(f"{where}.{unknown[0]}", "is not accepted; send only email and name")
            raw_email = user.get("email")
            email = errors.check(rules.check_email, raw_email.strip() if isinstance(raw_email, str) else raw_email,
                                 f"{where}.email")
            name = errors.check(rules.check_text, user.get("name"), f"{where}.name", max_length=200, strip=True)
            if email is None or name is None:
                continue
            key = email.lower()
            if key in seen:
                errors.add(f"{where}.email", f"is listed twice (also users[{seen[key]}])")
                continue
            if owner is not None and owner.email_key == key:
                errors.add(f"{where}.email", "is the project's owner; owners are synced with POST /projects/<id>/sync")
                continue
            seen[key] = index
            entries.append((email, name))
        errors.raise_if_any()
        return entries

    # -- payments ----------------------------------------------------------

    def record_payment(
        self,
        project: Any,
        amount: int,
        currency: str = "USD",
        *,
        customer_email: Optional[str] = None,
        status: str = "completed",
        invoice_id: Optional[str] = None,
        customer_id: Optional[str] = None,
        voucher_code: Optional[str] = None,
        transaction_type: Optional[str] = None,
        payment_gateway: Optional[str] = None,
        payment_gateway_transaction_id: Optional[str] = None,
        custom_fields: Optional[Mapping[str, Any]] = None,
        subtotal: Optional[int] = None,
    ) -> Any:
        """Record a payment of ``project`` (the outbox row); a completed one is then delivered.

        ``amount`` is integer minor units of ``currency`` after discount
        (``subtotal``: before). ``customer_email`` is required (HAVN keys new vs
        recurring customers on it). ``payment_gateway_transaction_id`` is the
        payment's idempotent identity at HAVN: the gateway's own id, or one is
        generated. Recording the same id again returns the existing payment (and
        completes it if it was pending and ``status`` is ``completed``); the
        same id with other content raises :class:`HAVNConflictError`. With
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
        """
        payment, _created = self._record_payment(
            project, amount, currency, customer_email=customer_email, status=status, invoice_id=invoice_id,
            customer_id=customer_id, voucher_code=voucher_code, transaction_type=transaction_type,
            payment_gateway=payment_gateway, payment_gateway_transaction_id=payment_gateway_transaction_id,
            custom_fields=custom_fields, subtotal=subtotal)
        return payment

    def _record_payment(self, project: Any, amount: Any, currency: Any = "USD", **fields: Any) -> Tuple[Any, bool]:
        """:meth:`record_payment`, also saying whether a new row was created."""
        state = current_state()
        session = state.db.session
        Payment = state.models.Payment
        errors = _Errors()
        project_row = errors.check(self.get_project, project)
        values = self._check_payment(errors, amount, currency, fields)
        errors.raise_if_any()
        values["project_id"] = project_row.id
        values["payment_gateway_transaction_id"] = values["payment_gateway_transaction_id"] or generate_gateway_id()

        existing = Payment.query.filter_by(
            payment_gateway_transaction_id=values["payment_gateway_transaction_id"]).first()
        if existing is None:
            values.update(self._conversion(state, values))
            payment = Payment(delivery_state="pending", attempts=0, **values)
            if payment.status == "completed":
                payment.completed_at = utcnow()
            session.add(payment)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # another request recorded the same gateway id first
                existing = Payment.query.filter_by(
                    payment_gateway_transaction_id=values["payment_gateway_transaction_id"]).first()
                if existing is None:
                    raise
            else:
                if payment.status == "completed" and state.config.delivery == "inline":
                    deliver_inline(payment)
                return payment, True
        return self._same_payment(existing, values), False

    @staticmethod
    def _conversion(state: Any, values: Mapping[str, Any]) -> Dict[str, Any]:
        """The currency audit columns of a new payment (nothing for USD).

        Server mode only notes the mode: HAVN converts. Client mode converts now,
        once: the rate (``@havn.rate_provider``, then ``HAVN_EXCHANGE_RATES``) and
        the USD cents are stored on the row, and every delivery attempt sends
        exactly those, so the idempotent payload never changes. A payment whose
        audit trail would not fit HAVN's 3 ``custom_fields`` entries, or whose
        USD amount HAVN cannot take, is refused here, before anything is written.
        """
        if values["currency"] == "USD":
            return {}
        if state.config.currency_conversion == "server":
            return {"conversion_mode": "server"}
        rate, source = state.resolve_rate(values["currency"])
        conversion = convert_to_usd(values["amount"], values["currency"], rate, subtotal=values["subtotal"],
                                    source=source)
        with_audit(values["custom_fields"], conversion.audit_fields())
        for usd, field in ((conversion.amount_usd, "amount_cents"), (conversion.subtotal_usd, "subtotal_cents")):
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
        if different:
            raise HAVNConflictError(
                f"payment_gateway_transaction_id {values['payment_gateway_transaction_id']!r} is already recorded "
                f"as payment {existing.id} with a different {', '.join(different)}; use a new id for a new charge",
                status_code=409)
        if values["status"] == "completed" and existing.status == "pending":
            return self.complete_payment(existing)
        if values["status"] != existing.status:
            raise HAVNConflictError(
                f"payment_gateway_transaction_id {values['payment_gateway_transaction_id']!r} is already recorded "
                f"as payment {existing.id} with status {existing.status}; status changes are not accepted by "
                f"re-posting it as {values['status']} (complete a pending payment with POST "
                f"/payments/{existing.id}/complete or havn.complete_payment())", status_code=409)
        return existing

    @staticmethod
    def _check_payment(errors: _Errors, amount: Any, currency: Any, fields: Dict[str, Any]) -> Dict[str, Any]:
        config = current_state().config
        try:
            code: Optional[str] = rules.check_currency(currency, "currency")
        except HAVNValidationError:
            code = None  # reported below, after the amount
        # Client mode sends USD cents: HAVN's cap applies to those (in _conversion), not to the original.
        converted = code not in (None, "USD") and config.currency_conversion == "client"
        check = _check_original_amount if converted else functools.partial(_check_sent_amount, currency=code)
        values: Dict[str, Any] = {
            "amount": errors.check(check, amount, "amount_cents"),
            "currency": errors.check(rules.check_currency, currency, "currency"),
        }
        status = fields.get("status", "completed")
        if status not in PAYMENT_STATUSES:
            errors.add("status", f"must be one of {', '.join(PAYMENT_STATUSES)}")
        values["status"] = status
        email = fields.get("customer_email")
        if email is None:
            errors.add("customer_email", "is required: HAVN needs the paying customer's email address")
        else:
            values["customer_email"] = errors.check(
                rules.check_email, email.strip() if isinstance(email, str) else email, "customer_email")
        for key, limit in (("invoice_id", 100), ("customer_id", 100), ("voucher_code", 100),
                           ("transaction_type", 50), ("payment_gateway", 100)):
            values[key] = errors.check(_optional_text, fields.get(key), key, limit)
        values["payment_gateway"] = (values["payment_gateway"] or config.payment_gateway).upper()
        gateway_id = fields.get("payment_gateway_transaction_id")
        values["payment_gateway_transaction_id"] = None
        if gateway_id is not None:
            values["payment_gateway_transaction_id"] = errors.check(
                rules.check_text, gateway_id, "payment_gateway_transaction_id", max_length=200, strip=True)
        custom = fields.get("custom_fields")
        values["custom_fields"] = None if custom is None else errors.check(
            rules.check_custom_fields, custom, "custom_fields")
        subtotal = fields.get("subtotal")
        values["subtotal"] = None
        if subtotal is not None:
            values["subtotal"] = errors.check(check, subtotal, "subtotal_cents")
            if values["subtotal"] is not None and values["amount"] is not None and values["subtotal"] < values["amount"]:
                errors.add("subtotal_cents", "must be at least amount_cents (it is the price before discount)")
        return values

    def complete_payment(self, payment: Any) -> Any:
        """Mark a pending payment completed (its money arrived) and deliver it; idempotent."""
        state = current_state()
        payment = self.get_payment(payment)
        if payment.status not in ("pending", "completed"):
            raise HAVNValidationError("status", f"payment {payment.id} is {payment.status}; only a pending "
                                      "payment can be completed")
        if payment.status == "pending":
            payment.status = "completed"
            payment.completed_at = utcnow()
            _commit(state.db.session)
        if state.config.delivery == "inline" and payment.delivery_state in ("pending", "failed"):
            deliver_inline(payment)
        return payment

    def deliver_payment(self, payment: Any) -> Any:
        """Send one payment now if it is due (see :func:`flask_havn.delivery.deliver`); the row."""
        return deliver(self.get_payment(payment).id)

    def retry_payment(self, payment: Any) -> Any:
        """Put a ``failed`` or ``dead`` payment back in line with a fresh attempt budget; deliver if inline.

        A ``sent`` payment raises :class:`HAVNConflictError` (nothing to retry);
        so does ``conversion_failed`` (HAVN keeps its FAILED verdict for that id:
        record a new payment). A payment that is not completed raises
        :class:`HAVNValidationError`.
        """
        state = current_state()
        payment = self.get_payment(payment)
        if payment.status != "completed":
            raise HAVNValidationError("status", f"payment {payment.id} is {payment.status}; complete it first "
                                      f"(POST /payments/{payment.id}/complete)")
        if payment.delivery_state == "sent":
            raise HAVNConflictError(f"payment {payment.id} was already delivered to HAVN as transaction "
                                    f"{payment.havn_transaction_id}; there is nothing to retry", status_code=409)
        if payment.delivery_state == "conversion_failed":
            raise HAVNConflictError(
                f"HAVN recorded payment {payment.id} as FAILED (currency conversion) and answers the same for its "
                "payment_gateway_transaction_id; record a new payment with a new id instead", status_code=409)
        if payment.delivery_state in ("failed", "dead"):
            payment.delivery_state = "pending"
            payment.attempts = 0
            payment.next_attempt_at = None
            _commit(state.db.session)
        if state.config.delivery == "inline" and payment.delivery_state == "pending":
            deliver_inline(payment)
        return payment

"""flask_havn's tables, declared on the host's Flask-SQLAlchemy ``db`` (all named ``havn_*``).

The extension never owns the host's metadata: :func:`build_models` declares
the four models on ``db.Model`` once per ``db`` and caches them, so they show
up in the host's ``db.create_all()`` and in Flask-Migrate/Alembic
autogenerate like the host's own models. Reach them as ``havn.models.Payment``.

The classes are named ``HAVNProject``, ``HAVNProjectMember``, ``HAVNPayment`` and
``HAVNWebhookEvent`` on the host's registry, so a host's own ``Payment`` or
``Project`` model (and its string relationships, ``db.relationship("Payment")``)
stays unambiguous; the :class:`Models` attributes keep the short names.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Type

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

__all__ = [
    "CONVERSION_MODES",
    "CONVERSION_VERDICTS",
    "Models",
    "build_models",
    "SYNC_STATES",
    "MEMBER_ROLES",
    "OWNER_ROLE_KEY",
    "PAYMENT_STATUSES",
    "DELIVERY_STATES",
    "EVENT_STATUSES",
    "column_length",
    "loaded_values",
    "show_committed",
    "utcnow",
]

#: Sync state of a project or member with HAVN.
SYNC_STATES = ("pending", "synced", "failed")
#: A member's HAVN role.
MEMBER_ROLES = ("owner", "partner")
#: The host's own view of a payment.
PAYMENT_STATUSES = ("pending", "completed", "failed", "refunded", "cancelled")
#: Where a payment stands with HAVN.
DELIVERY_STATES = ("pending", "sending", "sent", "failed", "conversion_failed", "dead")
#: How a non-USD payment's amount reaches HAVN in USD (``None`` on a USD payment).
CONVERSION_MODES = ("server", "client")
#: HAVN's verdict on a non-USD payment's conversion.
CONVERSION_VERDICTS = ("accepted", "failed")
#: What became of a received webhook event.
EVENT_STATUSES = ("received", "processed", "ignored", "failed")


def utcnow() -> datetime:
    """Naive UTC now (portable across SQLite and PostgreSQL ``TIMESTAMP`` columns)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def column_length(model: Any, name: str) -> int:
    """The declared width of ``model``'s string column ``name``: the longest value it stores everywhere.

    SQLite stores longer text, PostgreSQL refuses it (and MySQL truncates), so
    every value is checked against this before it is written or sent to HAVN.
    """
    return int(model.__table__.c[name].type.length)


def loaded_values(row: Any) -> Dict[str, Any]:
    """The attributes of ORM ``row`` loaded now (columns and loaded relationships), to show again after
    a commit expires them (:func:`show_committed`)."""
    return dict(sa.inspect(row).dict)


def show_committed(row: Any, *values: Mapping[str, Any]) -> Any:
    """``row`` holding ``values`` (later ones win) as its committed state, without a query.

    After a commit another process may already have moved the row on; reading
    it again would report that, and cost a query nobody asked for. What is not
    in ``values`` stays expired (read from the database on first use).
    """
    for key, value in {key: value for mapping in values for key, value in mapping.items()}.items():
        if not key.startswith("_"):
            set_committed_value(row, key, value)
    return row


@dataclass(frozen=True)
class Models:
    """The model classes bound to one host ``db``."""

    Project: Type[Any]
    ProjectMember: Type[Any]
    Payment: Type[Any]
    WebhookEvent: Type[Any]


_BUILT: "weakref.WeakKeyDictionary[Any, Models]" = weakref.WeakKeyDictionary()


def build_models(db: Any) -> Models:
    """Declare (once) and return flask_havn's models on the Flask-SQLAlchemy ``db``."""
    models = _BUILT.get(db)
    if models is None:
        models = _declare(db)
        _BUILT[db] = models
    return models


#: ``role_key`` of a project's owner; a partner's is its ``email_key`` (which always holds an ``@``).
OWNER_ROLE_KEY = "owner"


def _one_owner_constraint() -> sa.UniqueConstraint:
    """At most one ``owner`` member per project, as a plain UNIQUE constraint every database has.

    ``role_key`` is ``"owner"`` on the owner's row and the member's own
    ``email_key`` on a partner's (already unique per project), so
    ``UNIQUE(project_id, role_key)`` refuses a second owner and nothing else.
    Unlike a partial index (``WHERE role = 'owner'``), it means the same on
    MySQL and SQL Server, Alembic's autogenerate renders it unchanged, and it
    needs no dialect-specific option (which would import that dialect).
    """
    return sa.UniqueConstraint("project_id", "role_key", name="uq_havn_one_owner")


def _set_role_key(mapper: Any, connection: Any, member: Any) -> None:
    """Before each ORM insert and update of a member: ``role_key`` follows ``role`` and ``email_key``."""
    member.role_key = OWNER_ROLE_KEY if member.role == "owner" else member.email_key


def _declare(db: Any) -> Models:
    class HAVNProject(db.Model):  # type: ignore[name-defined]
        """A customer project (tenant) of the host; HAVN knows it as its owner's associate."""

        __tablename__ = "havn_projects"
        id = sa.Column(sa.Integer, primary_key=True)
        name = sa.Column(sa.String(200), nullable=False)
        #: The referral code this project was referred with (its upline); ``None``: platform revenue.
        upline_referral_code = sa.Column(sa.String(50), nullable=True, index=True)
        #: This project's own code, set by HAVN at sync; what it gives to projects it refers.
        referral_code = sa.Column(sa.String(50), nullable=True, unique=True)
        havn_associate_id = sa.Column(sa.String(64), nullable=True)
        sync_state = sa.Column(sa.String(20), nullable=False, default="pending")
        last_error = sa.Column(sa.Text, nullable=True)
        synced_at = sa.Column(sa.DateTime, nullable=True)
        #: The HAVN voucher of the referral link this project came through (``havn.attach_referral``),
        #: sent as ``promo_code`` with its first payment only.
        referral_voucher_code = sa.Column(sa.String(100), nullable=True)
        #: When the first payment used ``referral_voucher_code`` (``None``: not used yet).
        referral_voucher_used_at = sa.Column(sa.DateTime, nullable=True)
        created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)
        updated_at = sa.Column(sa.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

        def __repr__(self) -> str:
            return f"<HAVNProject {self.id} {self.name!r} code={self.referral_code!r}>"

    class HAVNProjectMember(db.Model):  # type: ignore[name-defined]
        """A person on a project's team, synced to HAVN as owner or partner."""

        __tablename__ = "havn_project_members"
        __table_args__ = (
            sa.UniqueConstraint("project_id", "email_key", name="uq_havn_member_email"),
            _one_owner_constraint(),
        )
        id = sa.Column(sa.Integer, primary_key=True)
        project_id = sa.Column(sa.Integer, sa.ForeignKey("havn_projects.id", ondelete="CASCADE"), nullable=False,
                               index=True)
        email = sa.Column(sa.String(254), nullable=False)
        #: Lower-cased email: one member per address per project, whatever its case.
        email_key = sa.Column(sa.String(254), nullable=False)
        name = sa.Column(sa.String(200), nullable=False)
        role = sa.Column(sa.String(10), nullable=False, default="partner")
        #: ``"owner"`` for the owner, else ``email_key``: what makes ``uq_havn_one_owner`` portable. Set by
        #: the model before every ORM insert and update (a bulk SQL ``UPDATE`` of ``role`` must set it too).
        role_key = sa.Column(sa.String(254), nullable=False)
        havn_user_id = sa.Column(sa.String(64), nullable=True)
        sync_state = sa.Column(sa.String(20), nullable=False, default="pending")
        last_error = sa.Column(sa.Text, nullable=True)
        created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)
        updated_at = sa.Column(sa.DateTime, nullable=False, default=utcnow, onupdate=utcnow)
        project = db.relationship(HAVNProject,
                                  backref=db.backref("members", lazy="select", cascade="all, delete-orphan"))

        def __repr__(self) -> str:
            return f"<HAVNProjectMember {self.id} {self.role} project={self.project_id}>"

    class HAVNPayment(db.Model):  # type: ignore[name-defined]
        """A payment of a project and its delivery to HAVN (the outbox row)."""

        __tablename__ = "havn_payments"
        __table_args__ = (sa.Index("ix_havn_payments_due", "delivery_state", "next_attempt_at"),)
        id = sa.Column(sa.Integer, primary_key=True)
        project_id = sa.Column(sa.Integer, sa.ForeignKey("havn_projects.id"), nullable=False, index=True)
        #: Final amount after discount, in integer minor units of ``currency``.
        amount = sa.Column(sa.BigInteger, nullable=False)
        currency = sa.Column(sa.String(3), nullable=False, default="USD")
        #: Price before discount, in minor units (``None``: no discount).
        subtotal = sa.Column(sa.BigInteger, nullable=True)
        status = sa.Column(sa.String(20), nullable=False, default="pending")
        invoice_id = sa.Column(sa.String(100), nullable=True, index=True)
        customer_id = sa.Column(sa.String(100), nullable=True)
        customer_email = sa.Column(sa.String(254), nullable=True)
        voucher_code = sa.Column(sa.String(100), nullable=True)
        payment_gateway = sa.Column(sa.String(100), nullable=False)
        #: The gateway's id (generated when the host has none): the payment's idempotent identity at HAVN.
        payment_gateway_transaction_id = sa.Column(sa.String(200), nullable=False, unique=True)
        transaction_type = sa.Column(sa.String(50), nullable=True)
        custom_fields = sa.Column(sa.JSON, nullable=True)
        #: Recorded while ``HAVN_TEST_MODE`` was on: test data. Only test-mode events change it (an event
        #: marked ``test_mode`` never changes a live payment), and ``flask havn trigger`` needs ``--force``
        #: for any other payment. Existing databases: add it with ``server_default`` false.
        test_mode = sa.Column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
        delivery_state = sa.Column(sa.String(20), nullable=False, default="pending")
        havn_transaction_id = sa.Column(sa.String(64), nullable=True, index=True)
        attempts = sa.Column(sa.Integer, nullable=False, default=0)
        next_attempt_at = sa.Column(sa.DateTime, nullable=True)
        #: Who holds the row while ``delivery_state == "sending"``, and since when.
        claimed_by = sa.Column(sa.String(64), nullable=True)
        claimed_at = sa.Column(sa.DateTime, nullable=True)
        last_error = sa.Column(sa.Text, nullable=True)
        #: Commissions HAVN reported (list of dicts, USD cents) and their total.
        commissions = sa.Column(sa.JSON, nullable=True)
        total_commission = sa.Column(sa.BigInteger, nullable=True)
        #: HAVN's verdict details (e.g. a conversion failure's amounts, both rates and reason).
        havn_details = sa.Column(sa.JSON, nullable=True)
        # -- currency audit (``amount``/``currency``/``subtotal`` above are the ORIGINAL money) --
        #: How a non-USD payment is converted: ``"server"`` (HAVN converts) or ``"client"`` (converted
        #: here when recorded); ``None`` for USD. Fixed when recorded, so every retry sends the same payload.
        conversion_mode = sa.Column(sa.String(10), nullable=True)
        #: The rate used, USD per one major unit, as a decimal string: client mode, ours; server mode,
        #: HAVN's when its answer reports one.
        exchange_rate = sa.Column(sa.String(64), nullable=True)
        #: Where ``exchange_rate`` came from (``HAVN_EXCHANGE_RATES``, the rate provider's text, ``HAVN``).
        exchange_rate_source = sa.Column(sa.String(200), nullable=True)
        #: USD cents: client mode, what is sent as ``amount`` (and ``subtotal_transaction``); server
        #: mode, HAVN's conversion when its answer reports one.
        amount_usd = sa.Column(sa.BigInteger, nullable=True)
        subtotal_usd = sa.Column(sa.BigInteger, nullable=True)
        #: HAVN's verdict on the conversion: ``"accepted"`` or ``"failed"`` (``None``: not answered yet).
        conversion_verdict = sa.Column(sa.String(20), nullable=True)
        #: HAVN's own USD cents for this payment (on a failure: the amount it expected instead of ours).
        havn_amount_usd = sa.Column(sa.BigInteger, nullable=True)
        completed_at = sa.Column(sa.DateTime, nullable=True)
        sent_at = sa.Column(sa.DateTime, nullable=True)
        created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)
        updated_at = sa.Column(sa.DateTime, nullable=False, default=utcnow, onupdate=utcnow)
        project = db.relationship(HAVNProject, backref=db.backref("payments", lazy="dynamic"))

        def __repr__(self) -> str:
            return f"<HAVNPayment {self.id} {self.amount} {self.currency} {self.delivery_state}>"

    class HAVNWebhookEvent(db.Model):  # type: ignore[name-defined]
        """An inbound HAVN event, stored once by its id before anything acts on it."""

        __tablename__ = "havn_webhook_events"
        id = sa.Column(sa.String(100), primary_key=True)
        type = sa.Column(sa.String(100), nullable=False, index=True)
        payload = sa.Column(sa.JSON, nullable=False)
        test_mode = sa.Column(sa.Boolean, nullable=False, default=False)
        status = sa.Column(sa.String(20), nullable=False, default="received", index=True)
        attempts = sa.Column(sa.Integer, nullable=False, default=0)
        last_error = sa.Column(sa.Text, nullable=True)
        payment_id = sa.Column(sa.Integer, sa.ForeignKey("havn_payments.id"), nullable=True)
        event_created_at = sa.Column(sa.String(40), nullable=True)
        #: When a delivery last claimed the event for processing (first receipt, a retry, a takeover).
        received_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)
        processed_at = sa.Column(sa.DateTime, nullable=True)

        def __repr__(self) -> str:
            return f"<HAVNWebhookEvent {self.id} {self.type} {self.status}>"

    for event_name in ("before_insert", "before_update"):
        sa.event.listen(HAVNProjectMember, event_name, _set_role_key)
    return Models(Project=HAVNProject, ProjectMember=HAVNProjectMember, Payment=HAVNPayment,
                  WebhookEvent=HAVNWebhookEvent)

"""The shape of flask_havn's rows, for type checkers: what ``havn.projects`` and ``havn.payments`` return.

The model classes are declared at run time on the host's own ``db.Model``
(:func:`flask_havn.models.build_models`), so no static class exists for a type
checker to see. These protocols describe their columns and relationships
instead, and the services are annotated with them: in a host's code
``payment = havn.payments.record(…)`` is a :class:`PaymentRow`, and a typo
such as ``payment.delivery_stat`` is a mypy error rather than a surprise in
production. At run time the objects are the real model instances
(``havn.models.Payment`` …); nothing here is instantiated.

Money columns are integers in minor units; timestamps are naive UTC
``datetime`` values (see :func:`flask_havn.models.utcnow`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional, Protocol

__all__ = ["ProjectRow", "ProjectMemberRow", "PaymentRow", "WebhookEventRow"]


class ProjectRow(Protocol):
    """A row of ``havn_projects`` (``havn.models.Project``): a customer project of the host."""

    id: int
    name: str
    #: The code of the project that referred this one; ``None``: its payments are platform revenue.
    upline_referral_code: Optional[str]
    #: This project's own code (set when its owner is synced); what it gives to the projects it refers.
    referral_code: Optional[str]
    havn_associate_id: Optional[str]
    #: ``pending``, ``synced`` or ``failed``.
    sync_state: str
    last_error: Optional[str]
    synced_at: Optional[datetime]
    created_at: datetime
    updated_at: datetime
    #: Its owner and partners.
    members: List["ProjectMemberRow"]
    #: Its payments (a dynamic query: ``project.payments.filter_by(…)``).
    payments: Any


class ProjectMemberRow(Protocol):
    """A row of ``havn_project_members`` (``havn.models.ProjectMember``): one person of a project's team."""

    id: int
    project_id: int
    email: str
    #: The lower-cased email (one member per address per project).
    email_key: str
    name: str
    #: ``owner`` or ``partner``.
    role: str
    role_key: str
    havn_user_id: Optional[str]
    #: ``pending``, ``synced`` or ``failed`` (HAVN's reason in ``last_error``).
    sync_state: str
    last_error: Optional[str]
    created_at: datetime
    updated_at: datetime
    project: ProjectRow


class PaymentRow(Protocol):
    """A row of ``havn_payments`` (``havn.models.Payment``): a payment and its delivery to HAVN."""

    id: int
    project_id: int
    #: After discount, in minor units of ``currency``.
    amount: int
    currency: str
    subtotal: Optional[int]
    #: The host's view: ``pending``, ``completed``, ``failed``, ``refunded`` or ``cancelled``.
    status: str
    invoice_id: Optional[str]
    customer_id: Optional[str]
    customer_email: Optional[str]
    voucher_code: Optional[str]
    payment_gateway: str
    #: The payment's idempotent identity at HAVN.
    payment_gateway_transaction_id: str
    transaction_type: Optional[str]
    custom_fields: Optional[Dict[str, Any]]
    #: ``pending``, ``sending``, ``sent``, ``failed``, ``conversion_failed`` or ``dead``.
    delivery_state: str
    havn_transaction_id: Optional[str]
    attempts: int
    next_attempt_at: Optional[datetime]
    claimed_by: Optional[str]
    claimed_at: Optional[datetime]
    last_error: Optional[str]
    #: What HAVN paid, level by level (dicts with USD cents), and the total.
    commissions: Optional[List[Dict[str, Any]]]
    total_commission: Optional[int]
    havn_details: Optional[Dict[str, Any]]
    conversion_mode: Optional[str]
    exchange_rate: Optional[str]
    exchange_rate_source: Optional[str]
    amount_usd: Optional[int]
    subtotal_usd: Optional[int]
    conversion_verdict: Optional[str]
    havn_amount_usd: Optional[int]
    completed_at: Optional[datetime]
    sent_at: Optional[datetime]
    created_at: datetime
    updated_at: datetime
    project: ProjectRow


class WebhookEventRow(Protocol):
    """A row of ``havn_webhook_events`` (``havn.models.WebhookEvent``): an inbound event, stored once."""

    id: str
    type: str
    payload: Dict[str, Any]
    test_mode: bool
    #: ``received``, ``processed``, ``ignored`` or ``failed``.
    status: str
    attempts: int
    last_error: Optional[str]
    payment_id: Optional[int]
    event_created_at: Optional[str]
    received_at: datetime
    processed_at: Optional[datetime]

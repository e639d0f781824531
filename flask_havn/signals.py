"""Blinker signals of flask_havn, all in one private namespace.

Every signal is sent with the real app object as sender
(``current_app._get_current_object()``), after the database commit that
recorded what it announces — except the three webhook signals
(``webhook_received``, ``commission_distributed``, ``conversion_failed``),
which are sent *inside* the transaction that records them: what a receiver
writes through ``db.session`` commits together with it, and a receiver that
raises rolls it all back — for an inbound event the endpoint answers 500 so
HAVN retries (see flask_havn.webhooks); for HAVN's synchronous FAILED answer
the payment is left ``failed`` and the next delivery attempt asks HAVN again
(see flask_havn.delivery). Don't commit inside those receivers.

Blinker pitfalls: connect to the app object (``signal.connect(fn, sender=app)``
or no sender), never to ``current_app`` (a proxy, which is not the sender);
and keep a reference to receivers defined as lambdas or closures: blinker
holds receivers weakly by default, so an unreferenced lambda silently
disappears (``signal.connect(fn, weak=False)`` otherwise).
"""
from __future__ import annotations

from blinker import Namespace

__all__ = [
    "project_synced",
    "members_synced",
    "transaction_sent",
    "transaction_failed",
    "webhook_received",
    "commission_distributed",
    "conversion_failed",
    "referral_attached",
]

_signals = Namespace()

#: A project's owner was synced to HAVN. Sender: the app. Keyword arguments:
#: ``project`` (the Project row, with ``referral_code`` set), ``result`` (the client's SyncResult).
project_synced = _signals.signal("havn.project-synced")

#: A project's team was synced in bulk. Sender: the app. Keyword arguments:
#: ``project``, ``members`` (the ProjectMember rows synced), ``result`` (the merged BulkSyncResult).
members_synced = _signals.signal("havn.members-synced")

#: HAVN accepted a payment's transaction. Sender: the app. Keyword arguments:
#: ``payment`` (the Payment row, ``delivery_state == "sent"``), ``result`` (the TransactionResult).
transaction_sent = _signals.signal("havn.transaction-sent")

#: A delivery attempt failed. Sender: the app. Keyword arguments: ``payment`` (its
#: ``delivery_state`` is ``failed``, ``conversion_failed`` or ``dead``), ``error`` (the HAVNError).
transaction_failed = _signals.signal("havn.transaction-failed")

#: Any verified inbound event, known type or not, sent once per event id. Sender: the app.
#: Keyword arguments: ``event`` (``.id``, ``.type``, ``.created_at``, ``.test_mode``, ``.data``).
webhook_received = _signals.signal("havn.webhook-received")

#: A ``commission.distributed`` event. Sender: the app. Keyword arguments: ``event``,
#: ``payment`` (the local Payment or ``None``), ``commissions`` (list of dicts, USD cents).
commission_distributed = _signals.signal("havn.commission-distributed")

#: HAVN refused a non-USD payment's conversion (FAILED, no commission). Sent ONCE per failure of a
#: known payment, by whichever records it first: delivery (HAVN's synchronous FAILED answer) or the
#: webhook receiver (the ``transaction.conversion_failed`` event); an event for a payment the app does
#: not know is announced on its own. Sender: the app. Keyword arguments: ``event`` (the Event, or
#: ``None`` when the synchronous answer came first), ``payment`` (the local Payment or ``None``),
#: ``reason`` (HAVN's text), ``details`` (dict: ``reason``, ``original_amount``, ``original_currency``,
#: ``submitted_amount``, ``expected_amount`` — USD cents —, ``submitted_exchange_rate``,
#: ``server_exchange_rate``; a value HAVN did not give is ``None``).
conversion_failed = _signals.signal("havn.conversion-failed")

#: A captured referral link was attached to a project (``havn.attach_referral``), after the commit.
#: Sender: the app. Keyword arguments: ``project`` (its ``upline_referral_code`` is now ``referral.code``),
#: ``referral`` (the :class:`~flask_havn.referrals.Referral`: ``code``, ``voucher``, ``captured_at``).
referral_attached = _signals.signal("havn.referral-attached")

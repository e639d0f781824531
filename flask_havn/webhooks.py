"""Receiving HAVN's signed events: verify, store once, apply, send signals.

``POST {HAVN_URL_PREFIX}{HAVN_WEBHOOK_PATH}`` (default ``/havn/webhooks``),
following webhook-events.md. In order: the body size (413; at most
``HAVN_WEBHOOK_MAX_BYTES + 1`` bytes are ever read), the Standard Webhooks
headers and signature over the raw bytes (400/401), the JSON envelope (400:
also nested deeper than ``rules.MAX_JSON_DEPTH``, an integer beyond 64 bits,
text no database stores or wider than its column — what would otherwise fail
to store on every retry), then the event is stored once in
``havn_webhook_events`` and processed. An event marked ``test_mode`` changes
only payments recorded in test mode, never a live one.

Processing is one database transaction: the event row is inserted with its
outcome (the claim), the matching Payment is updated, then the signals are
sent (``commission_distributed`` / ``conversion_failed``, then
``webhook_received``), and everything commits together. **Receivers run
inside that transaction**: what they write through ``db.session`` commits with
the event, and if one raises, everything rolls back, the event is kept as
``failed`` with the traceback and the answer is 500, so HAVN retries and the
retry runs the receivers again. Do not commit in a receiver. A repeated event
id is answered 200 and sends nothing; one arriving while the first delivery
is still processing waits for it (the inserted row holds the id: SQLite's
write lock, PostgreSQL's unique index), then finds it handled.

Who processes a stored event: a later delivery that finds it ``failed``, or
still ``received`` after a lease of ``RECEIVED_LEASE_SECONDS`` (10 minutes; a
row left ``received`` by an earlier build whose processor died, or by a
replay), each in one transaction with a conditional UPDATE as its claim.

CSRF: when Flask-WTF's ``CSRFProtect`` is on the app, the webhook blueprint
is exempted automatically, whether ``CSRFProtect`` was set up before or after
HAVN (senders of webhooks cannot carry a CSRF token).

Rejections are logged on the ``flask_havn.webhooks`` logger with their
reason, never with a secret or a signature; the answer stays generic.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from functools import lru_cache
from datetime import timedelta
from typing import Any, Callable, Dict, Optional, Tuple

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from . import signals
from .currency import failure_details
from .errors import HAVNConfigError, WebhookVerificationError
from .events import (
    COMMISSION_DISTRIBUTED,
    CONVERSION_FAILED,
    EVENT_COLUMNS,
    KNOWN_TYPES,
    EnvelopeError,
    Event,
    check_columns,
    commissions_of,
    event_changes,
    find_payment,
    parse_envelope,
)
from .models import loaded_values, show_committed, utcnow
from .signing import verify_webhook
from .state import get_state

__all__ = ["register_webhooks", "WebhookReceiver", "Outcome", "get_receiver", "BLUEPRINT_NAME",
           "RECEIVED_LEASE_SECONDS"]

log = logging.getLogger("flask_havn.webhooks")

#: Name of the per-app blueprint holding the endpoint (``url_for("havn_webhooks.receive")``).
BLUEPRINT_NAME = "havn_webhooks"
_CHUNK = 64 * 1024
#: Longest traceback text kept in ``havn_webhook_events.last_error``.
_MAX_ERROR_TEXT = 20_000
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: How long a ``received`` event is left to the delivery processing it (``received_at`` is set at
#: each claim); after that a redelivery takes it over, e.g. when that process died mid-way.
RECEIVED_LEASE_SECONDS = 10 * 60

_GENERIC = {
    400: ("invalid_request", "invalid webhook headers"),
    401: ("invalid_signature", "invalid signature"),
    413: ("payload_too_large", "payload too large"),
}


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery (or replay) of an event."""

    #: HTTP status to answer: 200, or 500 when processing failed.
    status_code: int
    #: The event's stored status after this delivery (``processed``, ``ignored``, ``failed``…).
    event_status: str
    #: ``True`` when the id was already handled (or in hand): nothing was done.
    duplicate: bool = False
    #: The traceback text when processing failed.
    error: Optional[str] = None


class WebhookReceiver:
    """The webhook endpoint's logic for one app (``get_state(app).receiver``).

    ``clock`` gives epoch seconds for the timestamp tolerance check; tests may
    replace it (``get_receiver(app).clock = lambda: 1_800_000_000``).
    """

    def __init__(self, state: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self.clock = clock

    def __repr__(self) -> str:
        return f"<WebhookReceiver path={self.path!r}>"

    @property
    def path(self) -> str:
        """The endpoint's full path on the app."""
        config = self._state.config
        return (config.url_prefix + config.webhook_path) or "/"

    # -- HTTP ----------------------------------------------------------------

    def handle_request(self) -> Tuple[Any, int]:
        """Answer the current request (the view); every rejection is JSON and logged."""
        if request.method != "POST":
            response = jsonify(error="method_not_allowed", message="send webhook events with POST")
            response.headers["Allow"] = "POST"
            return response, 405
        config = self._state.config
        try:
            body = _read_body(config.webhook_max_bytes)
            msg_id = verify_webhook(config.inbound_secrets, dict(request.headers), body,
                                    tolerance=config.webhook_tolerance, now=self.clock())
        except WebhookVerificationError as exc:
            return _reject(exc.status_code or 401, exc.message)
        try:
            event = parse_envelope(body, expected_id=msg_id)
            check_columns(event, self._model(), self._state.models.Payment)
        except EnvelopeError as exc:
            log.warning("webhook %r rejected (400): %s", msg_id, exc)
            return jsonify(error="invalid_payload", message="invalid payload"), 400
        try:
            outcome = self.receive(event)
        except SQLAlchemyError:
            self._session().rollback()
            log.exception("webhook %s (%r) could not be stored; answering 500 so the sender retries",
                          event.id, event.type)
            return jsonify(error="storage_failed",
                           message="the event could not be stored; it will be retried"), 500
        if outcome.status_code >= 500:
            return jsonify(error="processing_failed",
                           message="processing failed; the event is stored and will be processed on retry"), 500
        return jsonify(received=True, id=event.id, status=outcome.event_status,
                       duplicate=outcome.duplicate), 200

    # -- store once, process ---------------------------------------------------

    def receive(self, event: Event) -> Outcome:
        """Store ``event`` once and process it, unless its id was already handled.

        A new id costs one transaction: the event row is inserted (the claim:
        a concurrent delivery of the same id waits on it, then finds it
        handled), the payment updated, the receivers run, and it all commits
        together. A stored id is processed again only if it ``failed`` (or
        was left ``received`` past the lease), in one transaction as well.
        """
        outcome = self._process(event, stored=False)
        if outcome is not None:
            return outcome
        claimed, status = self._reclaim(event)
        if not claimed:
            log.info("webhook %s (%r) already %s; nothing to do", event.id, event.type, status)
            return Outcome(200, status, duplicate=True)
        outcome = self._process(event, stored=True)
        assert outcome is not None  # a stored row is updated, never inserted: no conflict
        return outcome

    def replay(self, event_id: str) -> Outcome:
        """Process a stored event again, whatever its status; its signals are sent again.

        Raises ``LookupError`` when no event has that id.
        """
        session, model = self._session(), self._model()
        row = session.get(model, event_id)
        if row is None:
            session.rollback()
            raise LookupError(f"no stored HAVN event has the id {event_id!r}; list them with `flask havn webhooks`")
        event = Event.from_envelope(dict(row.payload))
        row.status = "received"
        row.attempts = (row.attempts or 0) + 1
        row.received_at = utcnow()
        session.commit()  # counted even if it fails: the failure keeps this attempt
        outcome = self._process(event, stored=True, replay=True)
        assert outcome is not None
        return outcome

    def _session(self) -> Any:
        return self._state.db.session

    def _model(self) -> Any:
        return self._state.models.WebhookEvent

    def _reclaim(self, event: Event) -> Tuple[bool, str]:
        """Claim a stored id for processing (no commit); ``(True, …)`` if this delivery must process it.

        Only an event that ``failed``, or that is still ``received`` after the
        lease (:data:`RECEIVED_LEASE_SECONDS`: left by a process that died
        between a claim and its outcome, as earlier builds could), and
        then only by the one delivery whose conditional UPDATE claims it. Any
        other status is a duplicate.
        """
        session, model = self._session(), self._model()
        now = utcnow()
        stale = now - timedelta(seconds=RECEIVED_LEASE_SECONDS)
        result = session.execute(
            sa.update(model)
            .where(model.id == event.id,
                   sa.or_(model.status == "failed",
                          sa.and_(model.status == "received", model.received_at < stale)))
            .values(status="received", attempts=model.attempts + 1, received_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            return True, "received"
        status = session.execute(sa.select(model.status).where(model.id == event.id)).scalar_one_or_none()
        session.rollback()
        return False, status or "received"

    def _process(self, event: Event, *, stored: bool, replay: bool = False) -> Optional[Outcome]:
        """Apply ``event`` and send its signals in one transaction; on error keep it as ``failed``.

        ``stored=False``: the event row is inserted (with its outcome) before anything
        is written, and ``None`` is returned when its id is already stored (nothing was done).
        ``stored=True``: the row is claimed already and gets its outcome. Receivers
        run before the commit and see the row with its outcome already written.
        ``conversion_failed`` is sent once per failure of a known payment: not
        when delivery already recorded HAVN's synchronous FAILED answer (and
        sent it then), unless this is an explicit :meth:`replay`.
        """
        session, model = self._session(), self._model()
        Payment = self._state.models.Payment
        events, payments = model.__table__, Payment.__table__
        now = utcnow()
        known = event.type in KNOWN_TYPES
        status = "processed" if known else "ignored"
        # Our own statements are Core on the session's connection (the ORM's unit of work would
        # cost more than the statements themselves); the Payment stays an ORM row for receivers.
        connection = session.connection(bind_arguments={"mapper": model})
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        # Found before the claim: a new event's row is then inserted with its payment (no UPDATE of
        # it), a duplicate costs one lookup. A read takes no lock (and on SQLite opens no transaction).
        # The Payment is loaded as an ORM row only when a receiver of this app will be handed it;
        # otherwise the columns the event's changes depend on are enough.
        handed = _handed_to_a_receiver(app, event)
        payment = None
        if known:
            payment = find_payment(session, Payment, event.data, test_mode=event.test_mode,
                                   columns=None if handed else EVENT_COLUMNS)
        payment_id = payment.id if payment is not None else None
        if not stored:
            # The claim, written with its outcome: a concurrent delivery of this id waits on it
            # (SQLite's write lock, PostgreSQL's unique index) until this transaction ends.
            try:
                connection.execute(events.insert(), dict(
                    id=event.id, type=event.type, payload=event.envelope, test_mode=event.test_mode,
                    status=status, attempts=1, event_created_at=event.created_at, received_at=now,
                    processed_at=now, payment_id=payment_id))
            except IntegrityError:
                session.rollback()
                return None
        try:
            if stored:
                connection.execute(_by_id(events), {"row_id": event.id, "status": status, "payment_id": payment_id,
                                                    "processed_at": now, "last_error": None})
            first_failure = True
            if payment is not None:
                if event.type == CONVERSION_FAILED:
                    first_failure = _mark_conversion_failed(session, Payment, payment.id)
                changes = event_changes(event, payment, now)
                if changes:
                    changes["updated_at"] = now
                    connection.execute(_by_id(payments), {"row_id": payment.id, **changes})
                    if handed:
                        show_committed(payment, changes)  # the row as written, not dirty: receivers see it
            if event.type == COMMISSION_DISTRIBUTED:
                signals.commission_distributed.send(app, event=event, payment=payment,
                                                    commissions=commissions_of(event.data))
            elif event.type == CONVERSION_FAILED and (first_failure or replay):
                details = failure_details(event.data)
                signals.conversion_failed.send(app, event=event, payment=payment, reason=details["reason"],
                                               details=details)
            signals.webhook_received.send(app, event=event)
            shown: Dict[str, Any] = {}
            if handed and payment is not None:
                session.flush()  # the receivers' changes too, with their onupdate values
                shown = loaded_values(payment)
            session.commit()
        except Exception:
            error = traceback.format_exc()[-_MAX_ERROR_TEXT:]
            session.rollback()
            log.error("webhook %s (%r) failed while processing; stored as failed, the retry will process it "
                      "again:\n%s", event.id, event.type, error)
            self._store_failure(event, error, counted=replay)
            return Outcome(500, "failed", error=error)
        if shown:
            # What the commit expired, shown again without a query: receivers that kept the Payment
            # (and record_signals() in tests) can still read it once the session is gone.
            show_committed(payment, shown)
        log.info("webhook %s (%r) %s", event.id, event.type, status)
        return Outcome(200, status)

    def _store_failure(self, event: Event, error: str, *, counted: bool = False) -> None:
        """Keep the event as ``failed`` with ``error`` after its transaction rolled back.

        A stored row (a retry) gets one more attempt, unless ``counted`` (a
        replay committed its attempt before processing); a new one is inserted
        with its first. A row another delivery processed meanwhile is left alone.
        """
        session, model = self._session(), self._model()
        now = utcnow()
        try:
            result = session.execute(
                sa.update(model).where(model.id == event.id, model.status.in_(("failed", "received")))
                .values(status="failed", last_error=error, processed_at=None, received_at=now,
                        attempts=model.attempts + (0 if counted else 1))
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 0:
                session.add(model(id=event.id, type=event.type, payload=event.envelope, test_mode=event.test_mode,
                                  status="failed", attempts=1, event_created_at=event.created_at,
                                  received_at=now, last_error=error))
            session.commit()
        except Exception:  # the database itself is failing: the 500 still makes the sender retry
            session.rollback()
            log.exception("webhook %s: could not record the failure", event.id)


@lru_cache(maxsize=32)
def _by_id(table: sa.Table) -> Any:
    """``UPDATE table SET … WHERE id = :row_id``, built once; the SET columns are the parameters' keys."""
    return table.update().where(table.c.id == sa.bindparam("row_id"))


def _handed_to_a_receiver(app: Flask, event: Event) -> bool:
    """Whether a receiver of ``app`` was handed the Payment (a signal sent with ``payment=``)."""
    signal = {COMMISSION_DISTRIBUTED: signals.commission_distributed,
              CONVERSION_FAILED: signals.conversion_failed}.get(event.type)
    return signal is not None and bool(signal.receivers) and signal.has_receivers_for(app)


def _mark_conversion_failed(session: Any, payment_model: Any, payment_id: int) -> bool:
    """Flip the payment to ``conversion_failed``; ``True`` if this call did it (nobody had yet).

    A conditional UPDATE, so that of HAVN's synchronous answer (recorded by
    delivery) and its event, only the first to record the failure announces
    it, even when both arrive at once (the row lock / SQLite's write lock
    orders them).
    """
    result = session.execute(
        sa.update(payment_model)
        .where(payment_model.id == payment_id, payment_model.delivery_state != "conversion_failed")
        .values(delivery_state="conversion_failed")
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _read_body(max_bytes: int) -> bytes:
    """The raw body, never more than ``max_bytes + 1`` bytes read; 413 beyond ``max_bytes``."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise WebhookVerificationError(f"body of {length} bytes exceeds {max_bytes}", status_code=413)
    chunks = []
    total = 0
    try:
        stream = request.stream
        while total <= max_bytes:
            chunk = stream.read(min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except RequestEntityTooLarge:  # the app's own MAX_CONTENT_LENGTH is lower
        raise WebhookVerificationError("body exceeds the app's MAX_CONTENT_LENGTH", status_code=413) from None
    if total > max_bytes:
        raise WebhookVerificationError(f"body exceeds {max_bytes} bytes", status_code=413)
    return b"".join(chunks)


def _reject(status: int, reason: str) -> Tuple[Response, int]:
    error, message = _GENERIC.get(status, _GENERIC[401])
    log.warning("webhook rejected (%d) from %s: %s", status, request.remote_addr, reason)
    return jsonify(error=error, message=message), status


def _receive_view() -> Any:
    return get_receiver().handle_request()


def get_receiver(app: Optional[Flask] = None) -> WebhookReceiver:
    """The :class:`WebhookReceiver` of ``app`` (default: the current app)."""
    try:
        receiver = get_state(app).receiver
    except HAVNConfigError:
        receiver = None
    if receiver is None:
        raise LookupError("this app has no HAVN webhook endpoint: pass db= to HAVN(app, db=db) "
                          "(and keep routes enabled) to get one")
    return receiver


def _exempt_from_csrf(app: Flask, blueprint: Blueprint) -> bool:
    """Exempt ``blueprint`` from Flask-WTF's CSRFProtect if it is on ``app``; ``True`` if done."""
    csrf = app.extensions.get("csrf")
    if csrf is None or not hasattr(csrf, "exempt"):
        return False
    csrf.exempt(blueprint)
    return True


def register_webhooks(app: Flask, state: Any) -> None:
    """Register the webhook endpoint (blueprint ``havn_webhooks``) and its receiver on ``app``."""
    config = state.config
    state.receiver = WebhookReceiver(state)
    blueprint = Blueprint(BLUEPRINT_NAME, __name__, url_prefix=config.url_prefix or None)
    blueprint.add_url_rule(config.webhook_path or "/", endpoint="receive", view_func=_receive_view,
                           methods=_ALL_METHODS, provide_automatic_options=False)
    app.register_blueprint(blueprint)
    if _exempt_from_csrf(app, blueprint):
        return
    # CSRFProtect may be set up after HAVN: its before_request hook then runs after this
    # one, so exempting on the first request is still in time.
    pending = [True]

    def _exempt_when_csrf_arrives() -> None:
        if pending and _exempt_from_csrf(app, blueprint):
            pending.clear()

    app.before_request(_exempt_when_csrf_arrives)

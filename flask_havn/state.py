"""Everything flask_havn keeps for one app, and the one way to reach it.

``HAVN.init_app`` builds a :class:`HAVNState` and stores it under the single
key ``app.extensions["havn"]``; :func:`get_state` is the only accessor the
package uses (views, CLI, services, the webhook receiver). The services
(:attr:`HAVNState.projects`, :attr:`~HAVNState.payments`,
:attr:`~HAVNState.outbox`) are bound to the state, so two apps in one process
never share anything.
"""
from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Optional, Tuple

from flask import Flask, current_app
from sqlalchemy.pool import StaticPool

from .config import HAVNConfig
from .currency import RateProvider, resolve_rate
from .errors import HAVNConfigError
from .models import Models
from .transport import Transport

if TYPE_CHECKING:  # pragma: no cover
    import requests
    from flask_sqlalchemy import SQLAlchemy

    from .client import HAVNClient
    from .outbox import Outbox
    from .outbox.schedule import TaskQueue
    from .payments import Payments
    from .projects import Projects
    from .referrals import Referrals
    from .webhooks import WebhookReceiver

__all__ = ["EXTENSION_KEY", "Callbacks", "HAVNState", "get_state"]

#: The one ``app.extensions`` key flask_havn uses.
EXTENSION_KEY = "havn"

_NO_DB = ("flask_havn runs client-only on this app, so it keeps no projects or payments: pass your "
          "Flask-SQLAlchemy instance, HAVN(app, db=db), to use them.")


@dataclass
class Callbacks:
    """Functions the host registers on the extension object (they apply to every app it serves)."""

    #: Returns ``True`` when the current request may use the HAVN routes (``@havn.authorize``).
    authorize: Optional[Callable[[], bool]] = None
    #: Client-side conversion's rate source (``@havn.rate_provider``).
    rate_provider: Optional[RateProvider] = None
    #: Capture ``?ref=&vc=`` on every app of the extension (``havn.capture_referrals()``).
    capture_referrals: bool = False


@dataclass
class HAVNState:
    """The per-app state of the extension (``app.extensions["havn"]``)."""

    config: HAVNConfig
    transport: Transport = field(repr=False)
    db: Optional["SQLAlchemy"] = field(default=None, repr=False)
    #: The models on ``db`` (``None`` when the extension runs client-only).
    models: Optional[Models] = field(default=None, repr=False)
    #: The host's callbacks, shared with the extension object that registered this app.
    callbacks: "Callbacks" = field(default_factory=lambda: Callbacks(), repr=False)
    #: The embedded sandbox app when ``HAVN_SANDBOX`` is on, else ``None``.
    sandbox_app: Optional[Flask] = field(default=None, repr=False)
    #: The session the embedded sandbox delivers its events through (to this app, in-process).
    sandbox_delivery_session: Optional["requests.Session"] = field(default=None, repr=False)
    #: The webhook endpoint's logic (``None`` without routes).
    receiver: Optional["WebhookReceiver"] = field(default=None, repr=False)
    #: Referral links: capture, attach, voucher checks (set by ``init_app``).
    referrals: Optional["Referrals"] = field(default=None, repr=False)
    #: The task queue payments are delivered through (``HAVN_DELIVERY`` ``"celery"``/``"rq"``), else ``None``.
    queue: Optional["TaskQueue"] = field(default=None, repr=False)
    _services: Optional[Tuple["Projects", "Payments", "Outbox"]] = field(default=None, repr=False)
    #: Taken by the embedded sandbox's in-process event deliveries, and by delivery attempts when the
    #: host's database is one connection shared by every thread (see :meth:`shared_connection`).
    in_process_lock: "threading.RLock" = field(default_factory=threading.RLock, repr=False)

    def shared_connection(self) -> ContextManager[Any]:
        """:attr:`in_process_lock` when the host's database is one connection every thread shares
        (in-memory SQLite: Flask-SQLAlchemy's ``StaticPool``), else a no-op.

        The embedded sandbox delivers its events to this app on a thread of its own; on such a
        database its transaction and a delivery attempt's would interleave on the one connection.
        """
        if self.sandbox_app is None or self.db is None or not isinstance(self.db.engine.pool, StaticPool):
            return nullcontext()
        return self.in_process_lock

    def close(self) -> None:
        """Close the pooled connections (and the embedded sandbox); for tests and shutdown."""
        self.transport.close()
        if self.sandbox_app is not None:
            self.sandbox_app.extensions["havn_sandbox"].close()
        if self.sandbox_delivery_session is not None:
            self.sandbox_delivery_session.close()

    def make_client(self) -> "HAVNClient":
        """A client over this app's pooled transport (cheap: no new connections)."""
        from .client import HAVNClient

        return HAVNClient(
            transport=self.transport,
            default_payment_gateway=self.config.payment_gateway,
            bulk_max_size=self.config.bulk_max_size,
        )

    def resolve_rate(self, currency: str) -> Tuple[Decimal, str]:
        """``(rate, source)`` for a client-side conversion: the rate provider first, then
        ``HAVN_EXCHANGE_RATES`` (see :func:`flask_havn.currency.resolve_rate`)."""
        return resolve_rate(currency, provider=self.callbacks.rate_provider, table=self.config.exchange_rates)

    def require_db(self) -> "HAVNState":
        """This state if it has a database and models, else :class:`HAVNConfigError` saying how."""
        if self.db is None or self.models is None:
            raise HAVNConfigError(_NO_DB)
        return self

    def _bound_services(self) -> Tuple["Projects", "Payments", "Outbox"]:
        if self._services is None:
            self.require_db()
            from .outbox import Outbox
            from .payments import Payments
            from .projects import Projects

            self._services = (Projects(self), Payments(self), Outbox(self))
        return self._services

    @property
    def projects(self) -> "Projects":
        """The :class:`~flask_havn.projects.Projects` service of this app."""
        return self._bound_services()[0]

    @property
    def payments(self) -> "Payments":
        """The :class:`~flask_havn.payments.Payments` service of this app."""
        return self._bound_services()[1]

    @property
    def outbox(self) -> "Outbox":
        """The :class:`~flask_havn.outbox.Outbox` (delivery) service of this app."""
        return self._bound_services()[2]

    @property
    def session(self) -> Any:
        """The host's ``db.session`` (the services commit through it)."""
        return self.require_db().db.session  # type: ignore[union-attr]


def get_state(app: Optional[Flask] = None) -> HAVNState:
    """The :class:`HAVNState` of ``app`` (default: the current app)."""
    target = current_app if app is None else app
    try:
        return target.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
    except KeyError:
        raise HAVNConfigError(
            "The current Flask app is not registered with the HAVN extension. Did you forget to call "
            "HAVN(app) or havn.init_app(app)?"
        ) from None

"""The ``HAVN`` Flask extension: config, per-app transport, request-scoped client.

Follows Flask's extension guide: nothing is stored on the extension object
about an app; everything per app lives in ``app.extensions["havn"]`` (a
:class:`HAVNState`), and the per-request client lives on ``g``.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Sequence, Tuple

from flask import Flask, current_app, g, has_app_context, has_request_context
from werkzeug.local import LocalProxy

from .config import SANDBOX_API_KEY, SANDBOX_BASE_URL, SANDBOX_WEBHOOK_SECRET, HAVNConfig
from .currency import RateProvider
from .errors import HAVNConfigError
from .models import Models, build_models
from .state import EXTENSION_KEY, Callbacks, HAVNState, get_state
from .transport import Transport

if TYPE_CHECKING:  # pragma: no cover
    from flask_sqlalchemy import SQLAlchemy

    from .client import HAVNClient
    from .outbox import Outbox
    from .payments import Payments
    from .projects import Projects
    from .referrals import Referral, Referrals, ReferralAttachment, VoucherCheck
    from .results import BulkSyncResult
    from .rows import PaymentRow, ProjectRow

__all__ = ["HAVN", "HAVNState", "current_havn", "current_referral", "get_state"]

_CLIENT_KEY = "_havn_client"
#: Where the embedded sandbox reaches the host app in-process (never resolved by DNS).
_HOST_URL = "http://havn-host.invalid"


class HAVN:
    """Connects a Flask app to HAVN.

    ``havn = HAVN(app, db=db)`` or, with an app factory, ``havn = HAVN()`` then
    ``havn.init_app(app, db=db)``. Every option after ``app`` is keyword-only;
    options are the lower-case names of the ``HAVN_*`` config keys
    (``api_key=…``, ``test_mode=True``…). Precedence, highest first:
    ``app.config``, then these options, then the environment, then the
    defaults — what the host wrote in code wins over the shell.

    The flows live on three services of the current app, shaped like the
    client's resources: :attr:`projects`, :attr:`payments` and :attr:`outbox`.
    """

    def __init__(self, app: Optional[Flask] = None, *, db: Optional["SQLAlchemy"] = None,
                 routes: Optional[bool] = None, **options: Any) -> None:
        self._db = db
        self._routes = routes
        self._options = options
        self._callbacks = Callbacks()
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def init_app(self, app: Flask, *, db: Optional["SQLAlchemy"] = None, routes: Optional[bool] = None,
                 **options: Any) -> None:
        """Register the extension on ``app``; reads every ``HAVN_*`` key once.

        ``db`` is the host's Flask-SQLAlchemy instance: with it come the
        ``havn_*`` models, the blueprint and the webhook endpoint; without it
        the extension is client-only. ``routes=False`` keeps the models (and
        the services) but registers no blueprint and no webhook endpoint.
        Raises :class:`HAVNConfigError` if ``app`` already has the extension,
        if a value is invalid or out of range, if credentials are missing while
        ``HAVN_SANDBOX`` is off, or if routes are asked for without ``db``;
        warns (:class:`~flask_havn.config.HAVNConfigWarning`) on an unknown
        ``HAVN_*`` key in ``app.config``. Later changes to ``app.config`` are
        not seen.
        """
        if EXTENSION_KEY in app.extensions:
            raise HAVNConfigError(
                "A HAVN extension is already registered on this app. Call init_app once per app; "
                "to change settings, create a new app (app factories make this easy)."
            )
        config = HAVNConfig.from_app_config(app.config, {**self._options, **options})
        config.require_credentials()
        db = db if db is not None else self._db
        routes = routes if routes is not None else self._routes
        if routes and db is None:
            raise HAVNConfigError(
                "HAVN routes need a database: pass your Flask-SQLAlchemy instance, HAVN(app, db=db), "
                "or drop routes=True to use flask_havn as a client only."
            )
        with_routes = db is not None and routes is not False
        sandbox_app = None
        if config.sandbox:
            hook_url = _HOST_URL + config.url_prefix + config.webhook_path if with_routes else None
            config, sandbox_app = _embed_sandbox(config, app.config, webhook_url=hook_url,
                                                 instance_path=app.instance_path)
        for item in fields(config):
            if item.repr:  # every resolved setting but the secrets becomes visible in app.config
                app.config.setdefault("HAVN_" + item.name.upper(), getattr(config, item.name))
        transport = Transport(
            api_key=config.api_key or "",
            webhook_secret=config.webhook_secret or "",
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=config.max_retries,
            backoff_factor=config.backoff_factor,
            test_mode=config.test_mode,
        )
        if sandbox_app is not None:
            from .sandbox.adapter import WSGIAdapter

            transport.mount(SANDBOX_BASE_URL, WSGIAdapter(sandbox_app))
        state = HAVNState(
            config=config, transport=transport, db=db, sandbox_app=sandbox_app,
            models=build_models(db) if db is not None else None, callbacks=self._callbacks,
        )
        if db is not None:
            from .queues import attach

            attach(state)  # HAVN_DELIVERY "celery"/"rq": the extra, the commit hooks, RQ's queue
        app.extensions[EXTENSION_KEY] = state
        app.teardown_appcontext(_release_client)
        _register_referral_capture(app, state)
        if with_routes:
            from .views import register_routes
            from .webhooks import register_webhooks

            register_routes(app, state)
            register_webhooks(app, state)
            if sandbox_app is not None:
                _deliver_sandbox_events_in_process(app, state)

        from .cli import havn_cli

        if "havn" not in app.cli.commands:
            app.cli.add_command(havn_cli)

    # -- per-app objects -----------------------------------------------------

    @property
    def client(self) -> "HAVNClient":
        """The HAVN client of the current app context (created on first use, kept on ``g``)."""
        return _current_client()

    @property
    def config(self) -> HAVNConfig:
        """The resolved settings of the current app."""
        return get_state().config

    @property
    def models(self) -> Models:
        """The current app's models (``havn.models.Payment``…); needs ``db`` at ``init_app``."""
        return get_state().require_db().models  # type: ignore[return-value]

    @property
    def projects(self) -> "Projects":
        """The current app's :class:`~flask_havn.projects.Projects` service (needs ``db``)."""
        return get_state().projects

    @property
    def payments(self) -> "Payments":
        """The current app's :class:`~flask_havn.payments.Payments` service (needs ``db``)."""
        return get_state().payments

    @property
    def outbox(self) -> "Outbox":
        """The current app's :class:`~flask_havn.outbox.Outbox` (delivery) service (needs ``db``)."""
        return get_state().outbox

    # -- task queues (HAVN_DELIVERY "celery" / "rq") -----------------------------

    def init_celery(self, celery_app: Any, app: Optional[Flask] = None, *,
                    sweep_every: Optional[float] = 60.0) -> Any:
        """Deliver ``app``'s payments through the host's Celery app (``HAVN_DELIVERY = "celery"``).

        Registers the ``flask_havn.deliver`` and ``flask_havn.sweep`` tasks on
        ``celery_app`` (queue ``HAVN_QUEUE_NAME``) and the sweep's beat entry
        every ``sweep_every`` seconds; returns the
        :class:`~flask_havn.queues.celery.CeleryQueue`. ``app`` defaults to
        the current app. See :mod:`flask_havn.queues.celery`.
        """
        from .queues.celery import bind

        return bind(_app_or_current(app), celery_app, sweep_every=sweep_every)

    def init_rq(self, queue: Any, app: Optional[Flask] = None) -> Any:
        """Deliver ``app``'s payments through the host's own ``rq.Queue`` (``HAVN_DELIVERY = "rq"``).

        Only needed to pass a queue of your own (a connection pool, a
        serializer…): by default the queue is ``HAVN_QUEUE_NAME`` on
        ``HAVN_RQ_URL``. See :mod:`flask_havn.queues.rq`.
        """
        from .queues.rq import bind

        return bind(_app_or_current(app), queue)

    # -- callbacks -------------------------------------------------------------

    def authorize(self, callback: Callable[[], bool]) -> Callable[[], bool]:
        """Register the function that allows a request to the HAVN routes (decorator).

        Until one is registered every route answers 403: they manage money.
        The callback runs inside the request and returns ``True`` to allow it.
        One per extension object; it applies to every app the object serves.
        """
        self._callbacks.authorize = callback
        return callback

    def rate_provider(self, callback: RateProvider) -> RateProvider:
        """Register where client-side conversion gets its rates (decorator).

        Used when ``HAVN_CURRENCY_CONVERSION = "client"``, when a non-USD payment
        is recorded: ``callback(currency)`` returns ``(rate, source)`` — the rate
        in USD per ONE MAJOR UNIT as ``Decimal`` or decimal string (floats are
        refused) and a short text naming where it came from (kept on the payment
        for audit) — or ``None`` to fall back to ``HAVN_EXCHANGE_RATES``. It runs
        inside the request that records the payment; what it raises reaches the
        caller and nothing is recorded. One provider per extension object (like
        :meth:`authorize`); registering again replaces it.
        """
        if not callable(callback):
            raise HAVNConfigError("havn.rate_provider needs a function callback(currency) -> (rate, source) or None")
        self._callbacks.rate_provider = callback
        return callback

    def init_admin(self, admin: Any = None, *, app: Optional[Flask] = None, url: str = "/havn-admin",
                   name: str = "HAVN", authorize: Optional[Callable[[], bool]] = None) -> Any:
        """Add the operator console (Flask-Admin views, category "HAVN") to ``admin``; return the ``Admin``.

        Without ``admin`` a new ``flask_admin.Admin`` is created at ``url``.
        Access is deny-by-default: ``authorize`` if given, else the
        :meth:`authorize` callback. Needs the ``admin`` extra (``pip install
        "flask-havn[admin]"``; :class:`HAVNConfigError` names it when missing).
        See :func:`flask_havn.admin.init_admin`.
        """
        from .admin import init_admin

        return init_admin(admin, app=app, url=url, name=name, authorize=authorize)

    # -- referral links (flask_havn.referrals) -----------------------------------

    @property
    def referrals(self) -> "Referrals":
        """The current app's :class:`~flask_havn.referrals.Referrals` (capture, attach, vouchers)."""
        return get_state().referrals  # type: ignore[return-value]

    def capture_referrals(self) -> None:
        """Capture ``?ref=&vc=`` on every GET of every app this extension serves (``HAVN_CAPTURE_REFERRALS``).

        The cookie is signed with ``HAVN_REFERRAL_SECRET`` or ``app.secret_key``;
        with neither, the first capture raises :class:`HAVNConfigError`.
        """
        self._callbacks.capture_referrals = True

    def attach_referral(self, project: Any, referral: Any = None) -> "ReferralAttachment":
        """``havn.referrals.attach(…)``: the captured link's code becomes the project's upline."""
        return self.referrals.attach(project, referral)

    def validate_voucher(self, code: str, amount: Optional[int] = None,
                         currency: Optional[str] = None) -> "VoucherCheck":
        """``havn.referrals.validate_voucher(…)``: HAVN's answer on a voucher, for a checkout page."""
        return self.referrals.validate_voucher(code, amount, currency)

    # -- the 0.1 names, kept: each is one call of a service ----------------------

    def create_project(self, name: str, upline_referral_code: Optional[str] = None) -> "ProjectRow":
        """Create a project: :meth:`havn.projects.create <flask_havn.projects.Projects.create>`."""
        return self.projects.create(name, upline_referral_code)

    def get_project(self, project: Any) -> "ProjectRow":
        """The project for a row or an id: :meth:`havn.projects.get <flask_havn.projects.Projects.get>`."""
        return self.projects.get(project)

    def downline_projects(self, project: Any) -> List["ProjectRow"]:
        """The projects it referred: :meth:`havn.projects.downline <flask_havn.projects.Projects.downline>`."""
        return self.projects.downline(project)

    def sync_owner(self, project: Any, email: str, name: str) -> "ProjectRow":
        """Sync the owner, get the code: :meth:`havn.projects.sync_owner <flask_havn.projects.Projects.sync_owner>`."""
        return self.projects.sync_owner(project, email, name)

    def sync_members(self, project: Any, users: Sequence[Mapping[str, Any]], **kwargs: Any) -> "BulkSyncResult":
        """Sync the team: :meth:`havn.projects.sync_members <flask_havn.projects.Projects.sync_members>`."""
        return self.projects.sync_members(project, users, **kwargs)

    def record_payment(self, project: Any, amount: int, currency: str = "USD", **fields: Any) -> "PaymentRow":
        """Record (and deliver) a payment: :meth:`havn.payments.record <flask_havn.payments.Payments.record>`."""
        return self.payments.record(project, amount, currency, **fields)

    def get_payment(self, payment: Any) -> "PaymentRow":
        """The payment for a row or an id: :meth:`havn.payments.get <flask_havn.payments.Payments.get>`."""
        return self.payments.get(payment)

    def complete_payment(self, payment: Any) -> "PaymentRow":
        """Mark completed and deliver: :meth:`havn.payments.complete <flask_havn.payments.Payments.complete>`."""
        return self.payments.complete(payment)

    def retry_payment(self, payment: Any) -> "PaymentRow":
        """Requeue a failed or dead one: :meth:`havn.payments.retry <flask_havn.payments.Payments.retry>`."""
        return self.payments.retry(payment)

    def deliver_payment(self, payment: Any) -> "PaymentRow":
        """Send one payment now: :meth:`havn.outbox.deliver <flask_havn.outbox.Outbox.deliver>`."""
        return self.outbox.deliver(payment)


def _app_or_current(app: Optional[Flask]) -> Flask:
    """``app``, else the current app (inside an app context), else a :class:`HAVNConfigError` saying so."""
    if app is not None:
        return app
    if not has_app_context():
        raise HAVNConfigError("pass the Flask app (havn.init_celery(celery_app, app)), or call this inside its app "
                              "context")
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _current_client() -> "HAVNClient":
    client = g.get(_CLIENT_KEY)
    if client is None:
        client = get_state().make_client()
        setattr(g, _CLIENT_KEY, client)
    return client


def _release_client(exc: Optional[BaseException]) -> None:
    """Drop the request's client; the pooled transport below it stays open."""
    g.pop(_CLIENT_KEY, None)


def _register_referral_capture(app: Flask, state: HAVNState) -> None:
    """Give the state its :class:`~flask_havn.referrals.Referrals` and hook the capture into ``app``.

    The hooks do nothing until capture is on (config or ``havn.capture_referrals()``).
    With ``HAVN_CAPTURE_REFERRALS`` the signing key must already be there.
    """
    from .referrals import Referrals

    if state.config.capture_referrals and not (state.config.referral_secret or app.secret_key):
        raise HAVNConfigError("HAVN_CAPTURE_REFERRALS signs its cookie: set app.secret_key (SECRET_KEY) or "
                              "HAVN_REFERRAL_SECRET before init_app")
    state.referrals = Referrals(state)
    app.before_request(state.referrals.before_request)
    app.after_request(state.referrals.after_request)


def _embed_sandbox(config: HAVNConfig, app_config: Mapping[str, Any], *, webhook_url: Optional[str],
                   instance_path: str) -> Tuple[HAVNConfig, Flask]:
    """Point ``config`` at an in-process sandbox and build that sandbox app.

    ``HAVN_SANDBOX_*`` keys of the host's config (else of the environment)
    pass through to the sandbox; its events go to ``webhook_url``; its state
    lives in the instance folder unless ``HAVN_SANDBOX_DATABASE_URI`` says
    otherwise (see :mod:`flask_havn.sandbox.embedded`).
    """
    from .sandbox.embedded import embedded_sandbox

    config = replace(
        config,
        api_key=config.api_key or SANDBOX_API_KEY,
        webhook_secret=config.webhook_secret or SANDBOX_WEBHOOK_SECRET,
        base_url=SANDBOX_BASE_URL,
    )
    return config, embedded_sandbox(app_config, instance_path=instance_path, api_key=config.api_key or "",
                                    webhook_secret=config.webhook_secret or "", webhook_url=webhook_url)


def _deliver_sandbox_events_in_process(app: Flask, state: HAVNState) -> None:
    """Let the embedded sandbox POST its events to this app's webhook endpoint, without a socket."""
    import requests

    from .sandbox.adapter import WSGIAdapter

    def one_at_a_time(environ: Any, start_response: Any) -> Any:
        # On a database every thread shares (in-memory SQLite) a delivery attempt holds this lock
        # (HAVNState.shared_connection): the event waits for it instead of interleaving with it.
        with state.in_process_lock:
            return list(app(environ, start_response))

    session = requests.Session()
    session.mount(_HOST_URL, WSGIAdapter(one_at_a_time))
    assert state.sandbox_app is not None
    state.sandbox_app.extensions["havn_sandbox"].dispatcher.session = session
    state.sandbox_delivery_session = session


#: The current app's :class:`HAVNClient` (like ``current_user``): ``current_havn.transactions.send(…)``.
current_havn: "HAVNClient" = LocalProxy(_current_client)  # type: ignore[assignment]


def _current_referral() -> Optional["Referral"]:
    if not has_request_context():
        return None
    referrals = get_state().referrals
    return referrals.current() if referrals is not None else None


#: What the current visitor's referral link left (a :class:`~flask_havn.referrals.Referral`: ``code``,
#: ``voucher``, ``captured_at``), or ``None`` — see :meth:`flask_havn.referrals.Referrals.current`.
current_referral: Optional["Referral"] = LocalProxy(_current_referral)  # type: ignore[assignment]


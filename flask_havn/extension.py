"""The ``HAVN`` Flask extension: config, per-app transport, request-scoped client.

Follows Flask's extension guide: nothing is stored on the extension object
about an app; everything per app lives in ``app.extensions["havn"]`` (a
:class:`HAVNState`), and the per-request client lives on ``g``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Tuple

import requests

from flask import Flask, current_app, g
from werkzeug.local import LocalProxy

from .client import HAVNClient
from .config import SANDBOX_API_KEY, SANDBOX_BASE_URL, SANDBOX_WEBHOOK_SECRET, HAVNConfig
from .currency import RateProvider, resolve_rate
from .errors import HAVNConfigError
from .models import Models, build_models
from .services import HAVNServices
from .transport import Transport

if TYPE_CHECKING:  # pragma: no cover
    from flask_sqlalchemy import SQLAlchemy

__all__ = ["HAVN", "HAVNState", "current_havn", "get_state"]

_EXTENSION_KEY = "havn"
_CLIENT_KEY = "_havn_client"
#: Where the embedded sandbox reaches the host app in-process (never resolved by DNS).
_HOST_URL = "http://havn-host.invalid"


@dataclass
class HAVNState:
    """Everything flask_havn keeps for one app (``app.extensions["havn"]``)."""

    config: HAVNConfig
    transport: Transport = field(repr=False)
    db: Optional["SQLAlchemy"] = field(default=None, repr=False)
    #: The embedded sandbox app when ``HAVN_SANDBOX`` is on, else ``None``.
    sandbox_app: Optional[Flask] = field(default=None, repr=False)
    #: The models on ``db`` (``None`` when the extension runs client-only).
    models: Optional[Models] = field(default=None, repr=False)
    #: The extension object that registered this app (holds the ``authorize`` callback).
    extension: Optional["HAVN"] = field(default=None, repr=False)
    #: The session the embedded sandbox delivers its events through (to this app, in-process).
    sandbox_delivery_session: Optional[requests.Session] = field(default=None, repr=False)

    def close(self) -> None:
        """Close the pooled connections (and the embedded sandbox); for tests and shutdown."""
        self.transport.close()
        if self.sandbox_app is not None:
            self.sandbox_app.extensions["havn_sandbox"].close()
        if self.sandbox_delivery_session is not None:
            self.sandbox_delivery_session.close()

    def resolve_rate(self, currency: str) -> Tuple[Decimal, str]:
        """``(rate, source)`` for a client-side conversion: ``@havn.rate_provider`` first, then
        ``HAVN_EXCHANGE_RATES`` (see :func:`flask_havn.currency.resolve_rate`)."""
        provider = self.extension._rate_provider if self.extension is not None else None
        return resolve_rate(currency, provider=provider, table=self.config.exchange_rates)

    def make_client(self) -> HAVNClient:
        """A client over this app's pooled transport (cheap: no new connections)."""
        return HAVNClient(
            transport=self.transport,
            default_payment_gateway=self.config.payment_gateway,
            bulk_max_size=self.config.bulk_max_size,
        )


class HAVN(HAVNServices):
    """Connects a Flask app to HAVN.

    ``havn = HAVN(app, db=db)`` or, with an app factory, ``havn = HAVN()`` then
    ``havn.init_app(app, db=db)``. Every option after ``app`` is keyword-only;
    options are the lower-case names of the ``HAVN_*`` config keys
    (``api_key=…``, ``test_mode=True``…) and lose to ``app.config`` and to the
    environment.
    """

    def __init__(self, app: Optional[Flask] = None, *, db: Optional["SQLAlchemy"] = None,
                 routes: Optional[bool] = None, **options: Any) -> None:
        self._db = db
        self._routes = routes
        self._options = options
        self._authorize: Optional[Callable[[], bool]] = None
        self._rate_provider: Optional[RateProvider] = None
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def init_app(self, app: Flask, *, db: Optional["SQLAlchemy"] = None, routes: Optional[bool] = None,
                 **options: Any) -> None:
        """Register the extension on ``app``; reads every ``HAVN_*`` key once.

        ``db`` is the host's Flask-SQLAlchemy instance: with it come the
        ``havn_*`` models, the blueprint and the webhook endpoint; without it
        the extension is client-only. ``routes=False`` keeps the models but
        registers no blueprint. Raises :class:`HAVNConfigError` if ``app``
        already has the extension, if a value is invalid, if credentials are
        missing while ``HAVN_SANDBOX`` is off, or if routes are asked for
        without ``db``. Later changes to ``app.config`` are not seen.
        """
        if _EXTENSION_KEY in app.extensions:
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
            models=build_models(db) if db is not None else None, extension=self,
        )
        app.extensions[_EXTENSION_KEY] = state
        app.teardown_appcontext(_release_client)
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

    @property
    def client(self) -> HAVNClient:
        """The HAVN client of the current app context (created on first use, kept on ``g``)."""
        return _current_client()

    @property
    def config(self) -> HAVNConfig:
        """The resolved settings of the current app."""
        return get_state().config

    @property
    def models(self) -> Models:
        """The current app's models (``havn.models.Payment``…); needs ``db`` at ``init_app``."""
        models = get_state().models
        if models is None:
            raise HAVNConfigError("flask_havn runs client-only on this app: pass db=your SQLAlchemy() to init_app "
                                  "to get the havn_* models.")
        return models

    def authorize(self, callback: Callable[[], bool]) -> Callable[[], bool]:
        """Register the function that allows a request to the HAVN routes (decorator).

        Until one is registered every route answers 403: they manage money.
        The callback runs inside the request and returns ``True`` to allow it.
        """
        self._authorize = callback
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
        self._rate_provider = callback
        return callback


def get_state(app: Optional[Flask] = None) -> HAVNState:
    """The :class:`HAVNState` of ``app`` (default: the current app)."""
    target = current_app if app is None else app
    try:
        return target.extensions[_EXTENSION_KEY]
    except KeyError:
        raise HAVNConfigError(
            "The current Flask app is not registered with the HAVN extension. Did you forget to call "
            "HAVN(app) or havn.init_app(app)?"
        ) from None


def _current_client() -> HAVNClient:
    client = g.get(_CLIENT_KEY)
    if client is None:
        client = get_state().make_client()
        setattr(g, _CLIENT_KEY, client)
    return client


def _release_client(exc: Optional[BaseException]) -> None:
    """Drop the request's client; the pooled transport below it stays open."""
    g.pop(_CLIENT_KEY, None)


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
    from .sandbox.adapter import WSGIAdapter

    session = requests.Session()
    session.mount(_HOST_URL, WSGIAdapter(app))
    assert state.sandbox_app is not None
    state.sandbox_app.extensions["havn_sandbox"].dispatcher.session = session
    state.sandbox_delivery_session = session


#: The current app's :class:`HAVNClient` (like ``current_user``): ``current_havn.transactions.send(…)``.
current_havn: HAVNClient = LocalProxy(_current_client)  # type: ignore[assignment]


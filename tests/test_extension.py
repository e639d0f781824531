"""The HAVN extension: init_app, config resolution, per-app state, request-scoped client."""
from __future__ import annotations

import json
import logging
from typing import Any, List

import pytest
from flask import Flask, g
from flask_sqlalchemy import SQLAlchemy
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from _client_fixtures import *  # noqa: F401,F403 - fixtures (keepalive_server)
from flask_havn import HAVN, HAVNClient, current_havn
from flask_havn.errors import HAVNConfigError
from flask_havn.testing import wait_for_events

SYNC_ANSWER = {"success": True, "message": "ok", "referral_code": "HAVN-OW-001", "user_id": "usr_1"}


def _app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(HAVN_SANDBOX_DATABASE_URI="sqlite://")  # never a file in tests/instance
    app.config.update(config)
    return app


def _record(httpserver: HTTPServer) -> List[Request]:
    seen: List[Request] = []

    def handler(request: Request) -> Response:
        request.get_data()
        seen.append(request)
        return Response(json.dumps(SYNC_ANSWER), content_type="application/json")

    httpserver.expect_request("/api/v1/webhook/user-sync", method="POST").respond_with_handler(handler)
    return seen


def test_two_apps_with_different_credentials_side_by_side(httpserver: HTTPServer):
    seen = _record(httpserver)
    havn = HAVN()
    first = _app(HAVN_API_KEY="key-one", HAVN_WEBHOOK_SECRET="secret-one", HAVN_BASE_URL=httpserver.url_for(""))
    second = _app(HAVN_API_KEY="key-two", HAVN_WEBHOOK_SECRET="secret-two", HAVN_BASE_URL=httpserver.url_for(""))
    havn.init_app(first)
    havn.init_app(second)
    for app in (first, second, first):
        with app.app_context():
            assert havn.client.users.sync(email="o@example.com", name="Owner").referral_code == "HAVN-OW-001"
    assert [r.headers["X-API-Key"] for r in seen] == ["key-one", "key-two", "key-one"]
    assert first.extensions["havn"].transport is not second.extensions["havn"].transport
    assert not hasattr(havn, "app") and "app" not in vars(havn)


def test_client_lives_on_g_for_one_context_and_reuses_the_pooled_connection(keepalive_server):
    url, ports = keepalive_server
    app = _app(HAVN_API_KEY="k", HAVN_WEBHOOK_SECRET="s", HAVN_BASE_URL=url)
    havn = HAVN(app)
    clients = []
    for _ in range(3):
        with app.app_context():
            assert havn.client is havn.client is current_havn._get_current_object()
            assert g._havn_client is havn.client
            clients.append(havn.client)
            havn.client.users.sync(email="o@example.com", name="Owner")
        with app.app_context():
            assert "_havn_client" not in g  # released at teardown
    assert len({id(c) for c in clients}) == 3
    assert len({c.transport for c in clients}) == 1
    # Three calls from three app contexts, one TCP connection: the pool sits below the client.
    assert len(ports) == 3 and len(set(ports)) == 1
    app.extensions["havn"].close()


def test_init_twice_raises_with_a_fix():
    app = _app(HAVN_API_KEY="k", HAVN_WEBHOOK_SECRET="s")
    havn = HAVN(app)
    with pytest.raises(HAVNConfigError, match="init_app once per app"):
        havn.init_app(app)
    with pytest.raises(HAVNConfigError, match="already registered"):
        HAVN(app)


@pytest.mark.parametrize("config, key", [({}, "HAVN_API_KEY"), ({"HAVN_API_KEY": "k"}, "HAVN_WEBHOOK_SECRET")])
def test_missing_credentials_name_the_key(config, key):
    app = _app(**config)
    with pytest.raises(HAVNConfigError, match=key) as info:
        HAVN(app)
    assert "HAVN_SANDBOX" in info.value.message
    assert "havn" not in app.extensions


def test_environment_fills_missing_keys_and_app_config_wins(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HAVN_API_KEY", "env-key")
    monkeypatch.setenv("HAVN_WEBHOOK_SECRET", "env-secret")
    monkeypatch.setenv("HAVN_TIMEOUT", "12")
    app = _app(HAVN_TIMEOUT=4)
    havn = HAVN(app, timeout=99, test_mode=True)
    with app.app_context():
        assert havn.config.api_key == "env-key"
        assert havn.config.timeout == 4.0
        assert havn.config.test_mode is True
        assert havn.client.transport.timeout == 4.0 and havn.client.test_mode is True
    assert app.config["HAVN_TEST_MODE"] is True  # resolved defaults are visible in app.config


def test_init_app_options_beat_constructor_options():
    app = _app(HAVN_API_KEY="k", HAVN_WEBHOOK_SECRET="s")
    havn = HAVN(max_retries=5)
    havn.init_app(app, max_retries=1)
    with app.app_context():
        assert havn.config.max_retries == 1


def test_client_outside_an_app_context_and_on_an_unregistered_app():
    havn = HAVN()
    with pytest.raises(RuntimeError, match="application context"):
        havn.client
    with _app().app_context():
        with pytest.raises(HAVNConfigError, match="Did you forget to call"):
            havn.client
        with pytest.raises(HAVNConfigError, match="init_app"):
            current_havn.users


def test_client_only_without_db():
    app = _app(HAVN_API_KEY="k", HAVN_WEBHOOK_SECRET="s")
    havn = HAVN(app)
    with app.app_context():
        assert isinstance(havn.client, HAVNClient)
        with pytest.raises(HAVNConfigError, match="db="):
            havn.models
    with pytest.raises(HAVNConfigError, match="need a database"):
        HAVN(_app(HAVN_API_KEY="k", HAVN_WEBHOOK_SECRET="s"), routes=True)


def test_models_on_the_hosts_db_are_created_by_create_all(tmp_path):
    db = SQLAlchemy()
    app = _app(HAVN_API_KEY="k", HAVN_WEBHOOK_SECRET="s", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/h.db")
    db.init_app(app)
    havn = HAVN(app, db=db)
    with app.app_context():
        db.create_all()
        names = set(db.inspect(db.engine).get_table_names())
        assert {"havn_projects", "havn_project_members", "havn_payments", "havn_webhook_events"} <= names
        assert havn.models.Payment.__tablename__ == "havn_payments"
        db.engine.dispose()


def test_secrets_absent_from_reprs_and_logs(caplog: pytest.LogCaptureFixture, httpserver: HTTPServer):
    _record(httpserver)
    caplog.set_level(logging.DEBUG)
    app = _app(HAVN_API_KEY="key-SENSITIVE", HAVN_WEBHOOK_SECRET="secret-SENSITIVE",
               HAVN_BASE_URL=httpserver.url_for(""))
    havn = HAVN(app)
    with app.app_context():
        havn.client.users.sync(email="o@example.com", name="Owner")
        shown = " ".join([repr(havn), repr(havn.config), repr(app.extensions["havn"]), repr(havn.client),
                          repr(havn.client.transport), caplog.text])
    assert "SENSITIVE" not in shown


def test_sandbox_mode_needs_no_keys_and_talks_to_an_in_process_sandbox():
    app = _app(HAVN_SANDBOX=True, HAVN_SANDBOX_SEED=7)
    havn = HAVN(app)
    try:
        with app.app_context():
            assert havn.config.base_url == "http://havn-sandbox.invalid"
            owner = havn.client.users.sync(email="owner@example.com", name="Ada Owner", is_owner=True)
            assert owner.success and owner.referral_code.startswith("HAVN-AO-")
            sent = havn.client.transactions.send(
                amount=10000, referral_code=owner.referral_code, customer_email="c@example.com",
                payment_gateway_transaction_id="pi_1",
            )
            assert sent.transaction.status == "completed"
            assert [c.amount for c in sent.commissions] == [500]
        sandbox = app.extensions["havn"].sandbox_app.extensions["havn_sandbox"]
        dump = sandbox.backend.dump()
        assert len(dump["transactions"]) == 1 and dump["transactions"][0]["payment_gateway"] == "MANUAL"
        # Client-only host: no webhook endpoint, so the sandbox has nowhere to deliver.
        assert sandbox.dispatcher.url is None
    finally:
        app.extensions["havn"].close()


def test_embedded_sandbox_delivers_its_events_to_the_hosts_own_endpoint(make_host):
    from flask_havn.signals import commission_distributed
    from flask_havn.webhooks import get_receiver

    host = make_host({"HAVN_SANDBOX_SEED": 3})
    received: List[Any] = []

    def on_commission(sender: Any, **kwargs: Any) -> None:
        received.append((sender, kwargs["event"].type, kwargs["commissions"]))

    commission_distributed.connect(on_commission, sender=host.app)
    try:
        with host.app.app_context():
            owner = host.havn.client.users.sync(email="owner@example.com", name="Ada Owner", is_owner=True)
            host.havn.client.transactions.send(amount=10000, referral_code=owner.referral_code,
                                               customer_email="c@example.com", payment_gateway_transaction_id="pi_9")
        sandbox = host.app.extensions["havn"].sandbox_app.extensions["havn_sandbox"]
        assert sandbox.dispatcher.url == "http://havn-host.invalid" + get_receiver(host.app).path
        wait_for_events(host.app, timeout=10)
        assert [d["status_code"] for d in sandbox.dispatcher.deliveries()] == [200]
        assert len(received) == 1
        sender, event_type, commissions = received[0]
        assert sender is host.app and event_type == "commission.distributed"
        assert [c["amount"] for c in commissions] == [500]
        with host.app.app_context():
            events = host.db.session.execute(host.db.select(host.havn.models.WebhookEvent)).scalars().all()
            assert [(e.type, e.status) for e in events] == [("commission.distributed", "processed")]
    finally:
        commission_distributed.disconnect(on_commission, sender=host.app)


def test_sandbox_settings_come_from_app_config_else_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HAVN_SANDBOX_SEED", "7")
    monkeypatch.setenv("HAVN_SANDBOX_BULK_MAX_SIZE", "20")
    app = _app(HAVN_SANDBOX=True, HAVN_SANDBOX_BULK_MAX_SIZE=30)
    HAVN(app)
    try:
        settings = app.extensions["havn"].sandbox_app.extensions["havn_sandbox"].settings
        assert (settings.seed, settings.bulk_max_size) == (7, 30)
        # app.config shows where the client really goes
        assert app.config["HAVN_BASE_URL"] == "http://havn-sandbox.invalid"
    finally:
        app.extensions["havn"].close()

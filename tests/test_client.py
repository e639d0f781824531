"""HAVNClient itself: construction, shared transport, repr, closing, and secrets kept out of everything."""
from __future__ import annotations

import logging

import pytest
import requests

from _client_fixtures import *  # noqa: F401,F403 - fixtures
from _client_fixtures import FakeClock, Script, json_response
from flask_havn.client import HAVNClient
from flask_havn.errors import HAVNConfigError, HAVNError, HAVNValidationError
from flask_havn.transport import Transport

KEY = "ak_SUPER_SECRET_KEY_4242"
SECRET = "ws_SUPER_SECRET_HMAC_9999"


@pytest.mark.parametrize("kwargs, needle", [
    ({}, "api_key is missing"),
    ({"api_key": KEY}, "webhook_secret is missing"),
    ({"api_key": "  ", "webhook_secret": SECRET}, "api_key is missing"),
    ({"api_key": KEY, "webhook_secret": SECRET, "retries": 3}, "unknown HAVNClient option"),
])
def test_missing_or_wrong_configuration(kwargs, needle):
    with pytest.raises(HAVNConfigError, match=needle) as info:
        HAVNClient(**kwargs)
    assert KEY not in str(info.value) and SECRET not in str(info.value)
    assert "pass" in str(info.value) or "allowed" in str(info.value)


def test_extension_style_construction_over_a_shared_transport(script: Script, httpserver):
    with Transport(api_key=KEY, webhook_secret=SECRET, base_url=httpserver.url_for("/")) as shared:
        client = HAVNClient(transport=shared, default_payment_gateway="MANUAL", bulk_max_size=2)
        client.transactions.send(amount=5, customer_email="a@b.co", payment_gateway_transaction_id="p1")
        client.users.sync_bulk([{"email": f"u{i}@b.co", "name": "U"} for i in range(3)])
    assert script.seen[0].json["payment_gateway"] == "MANUAL"
    assert [len(s.json["users"]) for s in script.seen[1:]] == [2, 1]


@pytest.mark.parametrize("kwargs, needle", [
    ({"bulk_max_size": 0}, "HAVN_BULK_MAX_SIZE"),
    ({"bulk_max_size": "50"}, "HAVN_BULK_MAX_SIZE"),
    ({"default_payment_gateway": "  "}, "HAVN_PAYMENT_GATEWAY"),
    ({"default_payment_gateway": "G" * 101}, "HAVN_PAYMENT_GATEWAY"),
])
def test_bad_client_options(kwargs, needle):
    with pytest.raises(HAVNConfigError, match=needle):
        HAVNClient(KEY, SECRET, **kwargs)


def test_transport_and_credentials_are_exclusive():
    with Transport(api_key=KEY, webhook_secret=SECRET) as transport:
        with pytest.raises(HAVNConfigError, match="either transport"):
            HAVNClient(KEY, SECRET, transport=transport)
        with pytest.raises(HAVNConfigError, match="either transport"):
            HAVNClient(transport=transport, sleep=lambda s: None)


def test_repr_has_no_secrets():
    with HAVNClient(KEY, SECRET, base_url="https://staging-api.havn.com", test_mode=True) as client:
        assert repr(client) == "HAVNClient(base_url='https://staging-api.havn.com', test_mode=True)"
        assert KEY not in repr(client.transport) and SECRET not in repr(client.transport)
        assert client.test_mode is True


class _CountingSession(requests.Session):
    def __init__(self):
        super().__init__()
        self.closed = 0

    def close(self):
        self.closed += 1
        super().close()


def test_close_only_closes_what_the_client_created(script: Script, httpserver):
    shared = Transport(api_key=KEY, webhook_secret=SECRET, base_url=httpserver.url_for("/"))
    try:
        with HAVNClient(transport=shared) as borrowed:
            assert borrowed.transport is shared
        # The borrowed transport still works after the client closed.
        assert shared.request("GET", "/x") == {"success": True}
    finally:
        shared.close()

    session = _CountingSession()
    try:
        with HAVNClient(KEY, SECRET, base_url=httpserver.url_for("/"), session=session) as own:
            own.vouchers.list()
        assert session.closed == 0  # a session passed in belongs to the caller
    finally:
        session.close()
    assert len(script.seen) == 2


def test_secrets_never_leak_across_a_failing_and_succeeding_sequence(
        script: Script, httpserver, caplog, clock: FakeClock):
    def echo(seen):  # a hostile server that echoes what it got, credentials included
        return json_response({"error": "Echo", "message": f"got {seen.headers.get('X-Api-Key')}",
                              "headers": dict(seen.headers)}, 401)

    script.reply(json_response({}, 503, {"Retry-After": "1"}), echo,
                 json_response({"error": "Bad", "message": f"secret {SECRET} rejected"}, 422),
                 json_response({}, 429, {"X-RateLimit-Reset": "garbage"}),
                 json_response({"success": True, "transaction": {"transaction_id": "t"}}))
    errors = []
    with caplog.at_level(logging.DEBUG):
        client = HAVNClient(KEY, SECRET, base_url=httpserver.url_for("/"), max_retries=1,
                            sleep=clock.sleep, clock=clock, jitter=lambda: 0.0)
        try:
            for call in (
                lambda: client.transactions.send(amount=100, customer_email="a@b.co",
                                                 payment_gateway_transaction_id="p", payment_gateway="X"),
                lambda: client.vouchers.list(),
                lambda: client.users.sync("a@b.co", "A"),
                lambda: client.transactions.send(amount=100, customer_email="a@b.co",
                                                 payment_gateway_transaction_id="p", payment_gateway="X"),
                lambda: client.transactions.send(amount=-1, customer_email="a@b.co",
                                                 payment_gateway_transaction_id="p", payment_gateway="X"),
            ):
                try:
                    call()
                except HAVNError as exc:
                    errors.append(exc)
        finally:
            client.close()
    assert [type(e).__name__ for e in errors] == ["HAVNAuthError", "HAVNAPIError", "HAVNValidationError"]
    assert script.seen[1].headers["X-Api-Key"] == KEY  # the server really did get (and echo) it
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(getattr(e, "response", None))
                                                                   for e in errors]
    texts += [r.getMessage() for r in caplog.records] + [repr(client), repr(client.transport)]
    assert any("got ***" in t for t in texts) and any("secret *** rejected" in t for t in texts)
    for text in texts:
        assert KEY not in text and SECRET not in text
    assert caplog.records  # the sequence did log


def test_validation_errors_carry_field_and_are_value_errors(script: Script, make_client):
    with pytest.raises(ValueError) as info:
        make_client().transactions.send(amount=1, customer_email="a@b.co")
    assert isinstance(info.value, HAVNValidationError)
    assert info.value.field == "payment_gateway_transaction_id"
    assert script.seen == []

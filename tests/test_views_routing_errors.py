"""Routing 404/405 (raised before any view runs): JSON under the HAVN prefix, the host's own pages elsewhere."""
from __future__ import annotations

from typing import Any, Callable, Iterator, List, Optional

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from werkzeug.exceptions import HTTPException

from flask_havn import HAVN

from _projects_helpers import quiet


@pytest.fixture
def make_host(make_host: Any) -> Any:
    return quiet(make_host)


def _with_shop(host: Any) -> Any:
    host.app.add_url_rule("/shop", "shop", lambda: "shop page", methods=["GET", "POST"])
    host.havn.authorize(lambda: True)
    return host.app.test_client()


@pytest.mark.parametrize("method", ["PROPFIND", "MKCOL", "TRACE", "BREW"])
def test_an_unknown_method_on_a_havn_route_is_json_405(make_host: Any, method: str) -> None:
    client = _with_shop(make_host())
    response = client.open("/havn/projects", method=method)
    assert response.status_code == 405
    assert response.is_json
    assert response.get_json() == {"error": "method_not_allowed",
                                   "message": f"{method} is not allowed here; use GET, POST"}
    assert response.headers["Allow"] == "GET, POST"
    one = client.open("/havn/payments/7/complete", method=method)
    assert (one.status_code, one.is_json, one.headers["Allow"]) == (405, True, "POST")


def test_an_unknown_method_on_the_webhook_endpoint_is_json_405(make_host: Any) -> None:
    client = _with_shop(make_host())
    response = client.open("/havn/webhooks", method="PROPFIND")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
    assert response.headers["Allow"] == "POST"


def test_an_unknown_method_on_an_unknown_havn_path_is_json_404(make_host: Any) -> None:
    client = _with_shop(make_host())
    response = client.open("/havn/nothing/here", method="PROPFIND")
    assert response.status_code == 404
    assert response.get_json() == {"error": "not_found", "message": "no HAVN route at /havn/nothing/here"}


def test_the_prefix_itself_is_json_404(make_host: Any) -> None:
    client = _with_shop(make_host())
    response = client.get("/havn")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_the_hosts_own_paths_keep_werkzeugs_pages(make_host: Any) -> None:
    client = _with_shop(make_host())
    wrong = client.open("/shop", method="PROPFIND")
    assert wrong.status_code == 405
    assert not wrong.is_json and wrong.mimetype == "text/html"
    assert b"Method Not Allowed" in wrong.data
    assert sorted(wrong.headers["Allow"].split(", ")) == ["GET", "HEAD", "OPTIONS", "POST"]
    for path in ("/elsewhere", "/havnish", "/havn-other/projects"):
        missing = client.get(path)
        assert missing.status_code == 404
        assert not missing.is_json and b"Not Found" in missing.data
    assert client.get("/shop").data == b"shop page"


def test_an_empty_prefix_answers_json_only_on_havn_routes(make_host: Any) -> None:
    client = _with_shop(make_host({"HAVN_URL_PREFIX": ""}))
    havn = client.open("/projects", method="PROPFIND")
    assert (havn.status_code, havn.is_json, havn.headers["Allow"]) == (405, True, "GET, POST")
    hook = client.open("/webhooks", method="PROPFIND")
    assert (hook.status_code, hook.is_json, hook.headers["Allow"]) == (405, True, "POST")
    shop = client.open("/shop", method="PROPFIND")
    assert (shop.status_code, shop.is_json) == (405, False)
    missing = client.get("/nowhere")
    assert (missing.status_code, missing.is_json) == (404, False)


@pytest.fixture
def host_with_handlers(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """A host that registered its own error handlers BEFORE ``HAVN(app, db=db)``."""
    built: List[Any] = []

    def build(register: Callable[[Flask], None]) -> Any:
        app = Flask(f"handlers{len(built)}")
        app.config.update(TESTING=True, HAVN_SANDBOX=True, HAVN_SANDBOX_WEBHOOK_URL=None,
                          HAVN_SANDBOX_DATABASE_URI="sqlite://",
                          SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/h{len(built)}.sqlite")
        app.add_url_rule("/shop", "shop", lambda: "shop page", methods=["GET"])
        register(app)
        db = SQLAlchemy(app)
        havn = HAVN(app, db=db)
        built.append((app, db))
        havn.authorize(lambda: True)
        return app.test_client()

    yield build
    for app, db in built:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        app.extensions["havn"].close()


def test_a_hosts_earlier_code_handlers_still_answer_its_paths(host_with_handlers: Any) -> None:
    def register(app: Flask) -> None:
        app.register_error_handler(404, lambda exc: ("host 404 page", 404))
        app.register_error_handler(405, lambda exc: ("host 405 page", 405))

    client = host_with_handlers(register)
    assert client.get("/elsewhere").data == b"host 404 page"
    assert client.open("/shop", method="PROPFIND").data == b"host 405 page"
    assert client.get("/havn").get_json()["error"] == "not_found"
    assert client.open("/havn/projects", method="PROPFIND").get_json()["error"] == "method_not_allowed"


def test_a_hosts_earlier_httpexception_handler_still_answers_its_paths(host_with_handlers: Any) -> None:
    seen: List[Optional[int]] = []

    def register(app: Flask) -> None:
        def page(exc: HTTPException) -> Any:
            seen.append(exc.code)
            return f"host page {exc.code}", exc.code
        app.register_error_handler(HTTPException, page)

    client = host_with_handlers(register)
    assert client.open("/shop", method="PROPFIND").data == b"host page 405"
    assert client.get("/elsewhere").data == b"host page 404"
    assert client.open("/havn/projects", method="PROPFIND").is_json
    assert seen == [405, 404]

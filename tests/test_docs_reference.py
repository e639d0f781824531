"""The hand-written reference pages of docs/ name everything the code has: routes, control routes, keys, names.

The configuration table, the command line and the API are generated (``make
docs``); the route tables and the sandbox's settings table are written by
hand, so these tests fail when a route, key or public name is added without
its line in the docs.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator, List, Set, Tuple

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

import flask_havn
from flask_havn import HAVN

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _page(name: str) -> str:
    return DOCS.joinpath(name).read_text(encoding="utf-8")


@pytest.fixture
def app() -> Iterator[Flask]:
    app = Flask("docs_routes")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", HAVN_SANDBOX=True, HAVN_SANDBOX_DATABASE_URI="sqlite://")
    SQLAlchemy(app)
    HAVN(app, db=app.extensions["sqlalchemy"])
    yield app
    app.extensions["havn"].close()


def _routes(app: Flask, prefix: str, skip: Tuple[str, ...] = ()) -> Set[str]:
    """``"METHOD /path"`` of every route under ``prefix`` (ids shown as ``<id>``), but the catch-all ones."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefix) or "<path:" in rule.rule or rule.endpoint.endswith(skip):
            continue
        path = re.sub(r"<[^>]+>", "<id>", rule.rule[len(prefix):])
        found.update(f"{method} {path}" for method in rule.methods or () if method not in ("HEAD", "OPTIONS"))
    return found


def test_every_json_route_is_in_the_routes_page(app: Flask) -> None:
    routes = _routes(app, "/havn", skip=tuple(f"method_not_allowed_{n}" for n in range(50)) + ("receive",))
    assert len(routes) == 10
    page = _page("routes.rst")
    assert sorted(r for r in routes if f"``{r}``" not in page) == []


def test_every_sandbox_control_route_is_in_the_sandbox_page(app: Flask) -> None:
    routes = _routes(app.extensions["havn"].sandbox_app, "/_sandbox")
    assert len(routes) >= 10
    page = _page("sandbox.rst")
    assert sorted(r for r in routes if r not in page) == []


def test_every_sandbox_setting_is_in_the_sandbox_page() -> None:
    from flask_havn.sandbox.settings import _KEYS

    page = _page("sandbox.rst")
    missing: List[str] = [key for key in _KEYS.values() if f"``{key}" not in page]
    assert missing == []


def test_every_public_name_has_its_entry_in_the_api_reference() -> None:
    from flask_havn import signals

    page = _page("api.rst")
    names: List[Any] = [*flask_havn.__all__, *signals.__all__, "HAVNRecordNotFoundError", "Projects", "Payments",
                        "Recorded", "Outbox", "Attempt", "HAVNConfig", "sign_webhook", "record_signals",
                        "sample_event", "wait_for_events", "verify_webhook", "SandboxServer", "SandboxSettings",
                        "PaymentRow", "ProjectRow", "members_csv"]
    assert [name for name in names if not re.search(rf"\b{name}\b", page)] == []


def test_the_links_into_the_published_docs_name_pages_that_exist() -> None:
    from flask_havn.config import CONFIGURATION_DOCS

    readme = DOCS.parent.joinpath("README.rst").read_text(encoding="utf-8")
    links = re.findall(r"https://flask-havn\.readthedocs\.io/en/latest/([\w-]+)\.html", readme + CONFIGURATION_DOCS)
    assert "configuration" in links and "tutorial" in links
    assert [page for page in links if not DOCS.joinpath(f"{page}.rst").exists()] == []

"""Shared fixtures: host apps built like a real host would build them."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Mapping, Optional

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

if TYPE_CHECKING:  # imported lazily so a half-built tree still collects
    from flask_havn import HAVN

#: Read at import: the autouse fixture below removes every HAVN_* variable from each test's environment.
POSTGRES_URL: Optional[str] = os.environ.get("HAVN_TEST_POSTGRES_URL")
NO_POSTGRES = ("PostgreSQL not configured: run `eval \"$(.ci/postgres.sh)\"` (installs and starts a local PostgreSQL, "
               "exports HAVN_TEST_POSTGRES_URL) and pip install psycopg2-binary (the postgres extra)")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    POSTGRES_URL is None, reason=NO_POSTGRES))])
def database(request: pytest.FixtureRequest) -> Optional[str]:
    """Where a test that must hold on every supported database runs: ``None`` (make_host's SQLite
    file), then PostgreSQL's URL (``HAVN_TEST_POSTGRES_URL``; CI sets it and refuses skips)."""
    return None if request.param == "sqlite" else POSTGRES_URL


def fresh_tables(db: SQLAlchemy) -> None:
    """Drop and create ``db``'s tables: a test on a shared server database starts from clean tables
    (also after an interrupted run, or one with an older schema)."""
    db.session.remove()
    db.drop_all()
    db.create_all()


@pytest.fixture(autouse=True)
def _no_havn_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own HAVN_* variables must not leak into the tests."""
    for key in list(os.environ):
        if key.startswith("HAVN_"):
            monkeypatch.delenv(key)


@dataclass
class Host:
    """A host app as a SaaS would write it: Flask app, its db, and the HAVN extension."""

    app: Flask
    db: Optional[SQLAlchemy]
    havn: "HAVN"

    @property
    def models(self) -> Any:
        with self.app.app_context():
            return self.havn.models


@pytest.fixture
def make_host(tmp_path: Any) -> Iterator[Callable[..., Host]]:
    """Build host apps on a real SQLite file; ``HAVN_SANDBOX`` (in-process sandbox) unless overridden.

    ``database=`` (the :func:`database` fixture's value) puts the host on that
    database instead: a server database's tables are dropped and created first
    and dropped at the end, so each test starts clean.
    """
    hosts: List[Host] = []
    servers: List[Host] = []

    def factory(config: Optional[Mapping[str, Any]] = None, *, with_db: bool = True,
                database: Optional[str] = None, **havn_options: Any) -> Host:
        from flask_havn import HAVN

        app = Flask(f"host{len(hosts)}")
        app.config.update(
            TESTING=True,
            SQLALCHEMY_DATABASE_URI=database or f"sqlite:///{tmp_path}/host{len(hosts)}.sqlite",
            HAVN_SANDBOX=True,
            HAVN_SANDBOX_DATABASE_URI="sqlite://",  # each host's sandbox in memory: isolated and fast
        )
        app.config.update(config or {})
        db = SQLAlchemy() if with_db else None
        if db is not None:
            db.init_app(app)
        havn = HAVN(app, db=db, **havn_options)
        host = Host(app=app, db=db, havn=havn)
        hosts.append(host)
        if db is not None:
            with app.app_context():
                if database is not None:
                    servers.append(host)
                    fresh_tables(db)
                else:
                    db.create_all()
        return host

    yield factory
    for host in hosts:
        state = host.app.extensions.get("havn")
        if state is not None:
            state.close()  # first: its sandbox delivers queued events to the host (and its db) as it closes
        if host.db is not None:
            with host.app.app_context():
                host.db.session.remove()
                if host in servers:
                    host.db.drop_all()
                host.db.engine.dispose()


# -- CI refuses skipped tests ---------------------------------------------------
# .ci/run sets HAVN_TEST_NO_SKIPS=1 after installing PostgreSQL and Chromium: a test
# that skips there (say, because a service did not start) fails the run instead.
_skipped: List[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and os.environ.get("HAVN_TEST_NO_SKIPS") == "1":
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"HAVN_TEST_NO_SKIPS=1 but {len(_skipped)} test(s) skipped: " + ", ".join(_skipped[:10]),
                                red=True)
        session.exitstatus = 1

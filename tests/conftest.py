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
    """Build host apps on a real SQLite file; ``HAVN_SANDBOX`` (in-process sandbox, in memory) unless overridden."""
    hosts: List[Host] = []

    def factory(config: Optional[Mapping[str, Any]] = None, *, with_db: bool = True, **havn_options: Any) -> Host:
        from flask_havn import HAVN

        app = Flask(f"host{len(hosts)}")
        app.config.update(
            TESTING=True,
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/host{len(hosts)}.sqlite",
            HAVN_SANDBOX=True,
            HAVN_SANDBOX_DATABASE_URI="sqlite://",  # each host's sandbox in memory: isolated and fast
        )
        app.config.update(config or {})
        db = SQLAlchemy() if with_db else None
        if db is not None:
            db.init_app(app)
        havn = HAVN(app, db=db, **havn_options)
        if db is not None:
            with app.app_context():
                db.create_all()
        host = Host(app=app, db=db, havn=havn)
        hosts.append(host)
        return host

    yield factory
    for host in hosts:
        state = host.app.extensions.get("havn")
        if state is not None:
            state.close()  # first: its sandbox delivers queued events to the host (and its db) as it closes
        if host.db is not None:
            with host.app.app_context():
                host.db.session.remove()
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

"""Flask-Migrate round trip: a host's ``flask db init/migrate/upgrade`` creates flask_havn's tables as declared.

The host app is written to a temp folder and driven through the real ``flask``
command in a subprocess (as a developer runs it; Alembic's ``env.py`` also
reconfigures logging, which must not leak into the rest of the suite). After
the upgrade a second autogenerate (``flask db check``) must find nothing to do,
and the generated script, replayed offline for MySQL and SQL Server, must
still refuse a second owner per project.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import sqlalchemy as sa

pytest.importorskip("flask_migrate", reason="Flask-Migrate is missing: pip install -e '.[test]'")

# Read at import: the suite's autouse fixture hides every HAVN_* variable from the tests themselves.
POSTGRES_URL: Optional[str] = os.environ.get("HAVN_TEST_POSTGRES_URL")

HOST_APP = '''
"""A host app as its developer writes it: its own model, HAVN on its db, Flask-Migrate."""
import json
import os

import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN

db = SQLAlchemy()
migrate = Migrate()


class Invoice(db.Model):
    __tablename__ = "invoices"
    id = sa.Column(sa.Integer, primary_key=True)
    cents = sa.Column(sa.Integer, nullable=False)


def create_app():
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=os.environ["MIGRATION_TEST_DB"],
                      SQLALCHEMY_ENGINE_OPTIONS=json.loads(os.environ["MIGRATION_TEST_ENGINE_OPTIONS"]),
                      HAVN_API_KEY="migration-test-key", HAVN_WEBHOOK_SECRET="migration-test-secret")
    db.init_app(app)
    HAVN(app, db=db)
    migrate.init_app(app, db)
    return app
'''


class Host:
    """The host app's folder and its ``flask db …`` commands."""

    def __init__(self, folder: Path, url: str, engine_options: Dict[str, Any]) -> None:
        self.folder, self.url, self.engine_options = folder, url, engine_options
        folder.joinpath("migration_host.py").write_text(HOST_APP, encoding="utf-8")
        self.migrations = folder / "migrations"

    def flask_db(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HAVN_", "FLASK_"))}
        env.update(MIGRATION_TEST_DB=self.url, MIGRATION_TEST_ENGINE_OPTIONS=json.dumps(self.engine_options))
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "migration_host", "db", *args,
                               "--directory", str(self.migrations)],
                              cwd=self.folder, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"flask db {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def versions(self) -> List[Path]:
        return sorted(self.migrations.joinpath("versions").glob("*.py"))


@pytest.fixture(params=["sqlite", "postgresql"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    if request.param == "sqlite":
        yield Host(tmp_path, f"sqlite:///{tmp_path}/host.sqlite", {})
        return
    if POSTGRES_URL is None:
        pytest.skip("PostgreSQL not configured: run `eval \"$(bash .ci/postgres.sh)\"` (exports "
                    "HAVN_TEST_POSTGRES_URL) and pip install -e '.[test,postgres]'")
    schema = f"havn_migrate_{uuid.uuid4().hex[:12]}"  # its own schema: the rest of the suite is untouched
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield Host(tmp_path, POSTGRES_URL, {"connect_args": {"options": f"-csearch_path={schema}"}})
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _insert_member(conn: Any, member_id: int, email: str, role: str, role_key: str) -> None:
    conn.execute(sa.text(
        "INSERT INTO havn_project_members (id, project_id, email, email_key, name, role, role_key, sync_state, "
        "created_at, updated_at) VALUES (:id, 1, :email, :email, 'X', :role, :role_key, 'pending', "
        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), dict(id=member_id, email=email, role=role, role_key=role_key))


def test_autogenerate_upgrade_then_nothing_left_to_migrate(host: Host) -> None:
    host.flask_db("init")
    host.flask_db("migrate", "-m", "host and havn tables")
    (script,) = host.versions()
    text = script.read_text(encoding="utf-8")
    for table in ("invoices", "havn_projects", "havn_project_members", "havn_payments", "havn_webhook_events"):
        assert f"op.create_table('{table}'" in text
    assert "sa.UniqueConstraint('project_id', 'role_key', name='uq_havn_one_owner')" in text
    assert "_where" not in text and "postgresql" not in text and "sqlite" not in text  # nothing dialect-bound

    host.flask_db("upgrade")
    assert "No new upgrade operations detected" in host.flask_db("check")  # a second autogenerate: no changes
    assert "No changes in schema detected" in host.flask_db("migrate", "-m", "nothing")
    assert host.versions() == [script]  # Flask-Migrate's env.py writes no empty revision

    engine = sa.create_engine(host.url, **host.engine_options)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO havn_projects (id, name, sync_state, created_at, updated_at) "
                                 "VALUES (1, 'Acme', 'pending', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            _insert_member(conn, 1, "ann@acme.test", "owner", "owner")
            _insert_member(conn, 2, "bo@acme.test", "partner", "bo@acme.test")
            _insert_member(conn, 3, "cy@acme.test", "partner", "cy@acme.test")
        with pytest.raises(sa.exc.IntegrityError, match="uq_havn_one_owner|role_key"):
            with engine.begin() as conn:
                _insert_member(conn, 4, "eve@acme.test", "owner", "owner")
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["mysql", "mssql", "postgresql", "sqlite"])
def test_the_generated_migration_keeps_one_owner_per_project_on_every_database(tmp_path: Path, dialect: str) -> None:
    """Replay the autogenerated script offline (``--sql`` mode) for databases we cannot start here."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    host = Host(tmp_path, f"sqlite:///{tmp_path}/host.sqlite", {})
    host.flask_db("init")
    host.flask_db("migrate", "-m", "havn tables")
    (script,) = host.versions()
    spec = importlib.util.spec_from_file_location("havn_migration", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    sql = io.StringIO()
    context = MigrationContext.configure(dialect_name=dialect, opts={"as_sql": True, "output_buffer": sql})
    with Operations.context(context):
        module.upgrade()
    members = " ".join(sql.getvalue().split("CREATE TABLE havn_project_members", 1)[1].split(";", 1)[0].split())
    assert "CONSTRAINT uq_havn_one_owner UNIQUE (project_id, role_key)" in members
    assert "role_key VARCHAR(254) NOT NULL" in members

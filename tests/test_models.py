"""flask_havn's models on the host's db: names that never clash, DDL that suits each database."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from typing import Any, List

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_havn import HAVN
from flask_havn.models import build_models


def test_a_host_with_its_own_payment_and_project_models_and_string_relationships(tmp_path: Any) -> None:
    db = SQLAlchemy()

    class Project(db.Model):  # the host's own, unrelated to HAVN's
        __tablename__ = "projects"
        id = sa.Column(sa.Integer, primary_key=True)
        title = sa.Column(sa.String(50), nullable=False)

    class Payment(db.Model):
        __tablename__ = "payments"
        id = sa.Column(sa.Integer, primary_key=True)
        customer_id = sa.Column(sa.Integer, sa.ForeignKey("customers.id"), nullable=False)
        cents = sa.Column(sa.Integer, nullable=False)

    class Customer(db.Model):
        __tablename__ = "customers"
        id = sa.Column(sa.Integer, primary_key=True)
        project_id = sa.Column(sa.Integer, sa.ForeignKey("projects.id"), nullable=False)
        payments = db.relationship("Payment", order_by="Payment.id")
        project = db.relationship("Project")

    app = Flask("host_with_payment_model")
    app.config.update(TESTING=True, HAVN_SANDBOX=True, HAVN_SANDBOX_DATABASE_URI="sqlite://",
                      SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/host.sqlite")
    db.init_app(app)
    havn = HAVN(app, db=db)
    try:
        with app.app_context():
            db.create_all()
            project = Project(title="host project")
            customer = Customer(project=project, payments=[Payment(cents=100), Payment(cents=250)])
            db.session.add(customer)
            db.session.commit()
            db.session.expunge_all()
            found = db.session.execute(sa.select(Customer)).scalar_one()
            assert [p.cents for p in found.payments] == [100, 250]
            assert found.project.title == "host project"
            assert all(type(p) is Payment for p in found.payments)
            # HAVN's models are distinct classes with prefixed names, reached by their short attributes.
            models = havn.models
            assert models.Payment is not Payment and models.Project is not Project
            assert [models.Project.__name__, models.ProjectMember.__name__, models.Payment.__name__,
                    models.WebhookEvent.__name__] == ["HAVNProject", "HAVNProjectMember", "HAVNPayment",
                                                      "HAVNWebhookEvent"]
            havn_project = havn.create_project("HAVN side")
            assert repr(havn_project).startswith("<HAVNProject ")
            assert db.session.execute(sa.select(sa.func.count()).select_from(Project)).scalar_one() == 1
            assert db.session.execute(sa.select(sa.func.count()).select_from(models.Project)).scalar_one() == 1
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        app.extensions["havn"].close()


def _ddl(url: str) -> List[str]:
    """Every DDL statement ``create_all`` emits for the dialect of ``url`` (SQLAlchemy's capture engine)."""
    db = SQLAlchemy()
    build_models(db)
    statements: List[str] = []

    def capture(sql: Any, *multiparams: Any, **params: Any) -> None:
        statements.append(str(sql.compile(dialect=engine.dialect)))

    engine = sa.create_mock_engine(url, capture)
    db.metadata.create_all(engine, checkfirst=False)
    return statements


@pytest.mark.parametrize("url", ["sqlite://", "postgresql://", "mysql://", "mssql://"])
def test_the_one_owner_rule_is_the_same_plain_unique_constraint_on_every_database(url: str) -> None:
    (members,) = [text for text in _ddl(url) if "CREATE TABLE havn_project_members" in text]
    assert "CONSTRAINT uq_havn_one_owner UNIQUE (project_id, role_key)" in " ".join(members.split())
    assert "CONSTRAINT uq_havn_member_email UNIQUE (project_id, email_key)" in " ".join(members.split())
    assert not [text for text in _ddl(url) if " WHERE " in text]  # no partial index left anywhere
    assert any("CREATE INDEX ix_havn_payments_due" in text for text in _ddl(url))


def test_role_key_follows_role_and_the_database_refuses_a_second_owner(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        db, Member = host.db, host.havn.models.ProjectMember
        project = host.havn.create_project("Acme")
        owner = Member(project_id=project.id, email="Ann@Acme.test", email_key="ann@acme.test", name="Ann",
                       role="owner")
        partners = [Member(project_id=project.id, email=f"p{i}@acme.test", email_key=f"p{i}@acme.test",
                           name=f"P{i}") for i in range(2)]  # role left to its default, "partner"
        db.session.add_all([owner, *partners])
        db.session.commit()
        assert [m.role_key for m in (owner, *partners)] == ["owner", "p0@acme.test", "p1@acme.test"]

        db.session.add(Member(project_id=project.id, email="eve@acme.test", email_key="eve@acme.test",
                              name="Eve", role="owner"))
        with pytest.raises(sa.exc.IntegrityError, match="role_key"):
            db.session.commit()  # bypassing the services: the database itself holds the rule
        db.session.rollback()

        owner.role = "partner"  # an update keeps the key in step, both ways
        db.session.commit()
        assert owner.role_key == "ann@acme.test"
        partners[0].role = "owner"
        db.session.commit()
        assert partners[0].role_key == "owner"
        assert db.session.execute(sa.text("SELECT role_key FROM havn_project_members ORDER BY id")).scalars().all() \
            == ["ann@acme.test", "owner", "p1@acme.test"]


def test_an_sqlite_host_does_not_import_the_postgresql_dialect(tmp_path: Any) -> None:
    """The models need no dialect-specific options, so an SQLite app never loads another dialect."""
    script = f"""
import sys
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_havn import HAVN
app = Flask("cold")
app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///{tmp_path}/cold.sqlite", HAVN_SANDBOX=True)
db = SQLAlchemy(app)
havn = HAVN(app, db=db)
with app.app_context():
    db.create_all()
    project = havn.create_project("Cold start")
    havn.sync_owner(project, email="ann@example.com", name="Ann")
print(sorted(m for m in sys.modules if m.startswith("sqlalchemy.dialects.")))
app.extensions["havn"].close()
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith("HAVN_")}).stdout
    loaded = ast.literal_eval(out.strip())
    assert "sqlalchemy.dialects.sqlite" in loaded
    assert [name for name in loaded if name.startswith(("sqlalchemy.dialects.postgresql",
                                                        "sqlalchemy.dialects.mysql",
                                                        "sqlalchemy.dialects.mssql"))] == []

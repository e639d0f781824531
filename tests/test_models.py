"""flask_havn's models on the host's db: names that never clash, DDL that suits each database."""
from __future__ import annotations

from typing import Any, Dict, List

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


def _index_ddl(url: str) -> Dict[str, str]:
    return {name: text for text in _ddl(url) for name in ("uq_havn_one_owner", "uq_havn_member_email")
            if name in text}


@pytest.mark.parametrize("url", ["mysql://", "mssql://"])
def test_the_one_owner_index_is_not_created_where_indexes_have_no_where(url: str) -> None:
    found = _index_ddl(url)
    assert "uq_havn_one_owner" not in found  # it would be a plain UNIQUE(project_id): one member per project
    assert "uq_havn_member_email" in found  # the other constraints are still created
    assert any("CREATE INDEX ix_havn_payments_due" in text for text in _ddl(url))


@pytest.mark.parametrize("url", ["sqlite://", "postgresql://"])
def test_the_one_owner_index_is_partial_where_the_database_can(url: str) -> None:
    text = _index_ddl(url)["uq_havn_one_owner"]
    assert text.startswith("CREATE UNIQUE INDEX uq_havn_one_owner")
    assert text.endswith("WHERE role = 'owner'")

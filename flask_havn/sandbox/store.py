"""The sandbox's storage: plain SQLAlchemy 2.x models on their own MetaData (no Flask-SQLAlchemy).

``sqlite://`` (the default) is one in-memory database shared by every thread
(``StaticPool``, ``check_same_thread=False``); a file URL keeps state across
restarts. Every row has an integer ``seq`` assigned as ``max(seq) + 1`` inside the
writing transaction, so ids are derived from stored rows: a restart never re-issues
one, and a rolled-back (test-mode) call leaves no gap in the stored sequence.

A SQLite file may be shared by several processes (a web process and a
``flask havn …`` command embedding the same sandbox): it runs in WAL mode, every
transaction starts with ``BEGIN IMMEDIATE`` (so two processes never both read
``max(seq)`` and then race to write) and waits up to :data:`BUSY_TIMEOUT` seconds
for the other's write lock; creating and rebuilding the schema are transactions too.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional, Type

from sqlalchemy import JSON, Boolean, Integer, MetaData, String, create_engine, event, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool

__all__ = [
    "Base",
    "UserRow",
    "AssociateRow",
    "TransactionRow",
    "CommissionRow",
    "VoucherRow",
    "LoginTokenRow",
    "RateRow",
    "Store",
    "BUSY_TIMEOUT",
    "next_seq",
]


class Base(DeclarativeBase):
    """Declarative base of the sandbox tables; its MetaData is the sandbox's own."""

    metadata = MetaData()


class UserRow(Base):
    """A user of the SaaS known to HAVN (user sync, login)."""

    __tablename__ = "havn_sandbox_users"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_lower: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    google_id: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    picture: Mapped[Optional[str]] = mapped_column(String(2000), nullable=True)
    avatar: Mapped[Optional[str]] = mapped_column(String(2000), nullable=True)
    country_code: Mapped[Optional[str]] = mapped_column(String(2), nullable=True)
    role: Mapped[str] = mapped_column(String(20), default="partner")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The user's own associate (the one whose referral code earns for this user).
    associate_id: Mapped[Optional[str]] = mapped_column(String(40), nullable=True)
    #: The existing associate this user was linked to (a project's team member).
    member_of_id: Mapped[Optional[str]] = mapped_column(String(40), nullable=True)
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))


class AssociateRow(Base):
    """An associate: a node of the referral tree with a unique referral code."""

    __tablename__ = "havn_sandbox_associates"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[Optional[str]] = mapped_column(String(320), nullable=True)
    user_id: Mapped[Optional[str]] = mapped_column(String(40), nullable=True)
    referral_code: Mapped[str] = mapped_column(String(50), unique=True, index=True)
    #: ``XX`` and ``NNN`` of a ``HAVN-XX-NNN`` code (``None`` for other shapes).
    code_initials: Mapped[Optional[str]] = mapped_column(String(2), nullable=True, index=True)
    code_number: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    upline_id: Mapped[Optional[str]] = mapped_column(String(40), nullable=True, index=True)
    role: Mapped[str] = mapped_column(String(20), default="partner")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[str] = mapped_column(String(32))


class TransactionRow(Base):
    """A recorded transaction with the exact answer given, for idempotent replay."""

    __tablename__ = "havn_sandbox_transactions"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    payment_gateway_transaction_id: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    idempotency_key: Mapped[Optional[str]] = mapped_column(String(255), unique=True, nullable=True)
    #: SHA-256 of the canonical JSON of the request payload.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    amount_usd: Mapped[int] = mapped_column(Integer)
    customer_email_lower: Mapped[str] = mapped_column(String(320), index=True)
    customer_type: Mapped[str] = mapped_column(String(20))
    referral_code: Mapped[Optional[str]] = mapped_column(String(50), nullable=True)
    promo_code: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    platform_amount: Mapped[int] = mapped_column(Integer)
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSON)
    #: ``transaction.conversion_failed`` data when the conversion did not match.
    failure: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[str] = mapped_column(String(32))


class CommissionRow(Base):
    """One level's commission on one transaction, in USD cents."""

    __tablename__ = "havn_sandbox_commissions"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    transaction_id: Mapped[str] = mapped_column(String(40), index=True)
    associate_id: Mapped[str] = mapped_column(String(40), index=True)
    referral_code: Mapped[str] = mapped_column(String(50))
    level: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)
    percentage: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[str] = mapped_column(String(32))


class VoucherRow(Base):
    """A HAVN voucher (promo code) owned by an associate."""

    __tablename__ = "havn_sandbox_vouchers"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    serial: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    code: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    associate_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(30))
    value: Mapped[int] = mapped_column(Integer)
    usage_limit: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    current_usage: Mapped[int] = mapped_column(Integer, default=0)
    min_purchase: Mapped[int] = mapped_column(Integer, default=0)
    max_purchase: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    client_type: Mapped[Optional[str]] = mapped_column(String(20), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    start_date: Mapped[Optional[str]] = mapped_column(String(10), nullable=True)
    end_date: Mapped[Optional[str]] = mapped_column(String(10), nullable=True)
    description: Mapped[Optional[str]] = mapped_column(String(500), nullable=True)
    created_date: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))


class LoginTokenRow(Base):
    """An issued SSO login token (by its ``jti``), redeemable once."""

    __tablename__ = "havn_sandbox_login_tokens"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    jti: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user_id: Mapped[str] = mapped_column(String(40))
    used: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[str] = mapped_column(String(32))



class RateRow(Base):
    """An exchange rate changed through the control routes (or a seed); it overrides the configured one."""

    __tablename__ = "havn_sandbox_rates"
    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    #: USD per one major unit, as a plain decimal string.
    rate: Mapped[str] = mapped_column(String(64))


#: Seconds a transaction waits for another process's write lock on a shared SQLite file.
BUSY_TIMEOUT = 30.0


def next_seq(session: Session, model: Type[Base]) -> int:
    """The next ``seq`` of ``model``'s table: one past the highest stored (or pending) row."""
    current = session.scalar(_highest_seq(model))
    return int(current or 0) + 1


@lru_cache(maxsize=None)
def _highest_seq(model: Type[Base]) -> Any:
    return select(func.max(model.seq))  # type: ignore[attr-defined]


def _make_engine(uri: str) -> Engine:
    url = make_url(uri)
    if url.get_backend_name() != "sqlite":
        return create_engine(url)
    in_memory = url.database in (None, "", ":memory:")
    kwargs: dict = {"connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT}}
    if in_memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    # pysqlite's own transaction handling breaks SAVEPOINT and defers BEGIN; let
    # SQLAlchemy emit BEGIN itself (the recipe from SQLAlchemy's SQLite dialect docs),
    # as BEGIN IMMEDIATE: the write lock is taken first, or waited for, never upgraded.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        if not in_memory:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; no fsync per commit
            finally:
                cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Store:
    """The engine and schema of one sandbox; hands out sessions."""

    def __init__(self, database_uri: str) -> None:
        self.engine = _make_engine(database_uri)
        with self.engine.begin() as connection:  # one transaction: another process may be creating them too
            Base.metadata.create_all(connection)

    def session(self) -> Session:
        """A new session; the caller commits or rolls back (test mode) and closes it."""
        return Session(self.engine, expire_on_commit=False, autoflush=True)

    def rebuild(self) -> None:
        """Drop every sandbox table and create them again, empty (one transaction)."""
        with self.engine.begin() as connection:
            Base.metadata.drop_all(connection)
            Base.metadata.create_all(connection)

    def close(self) -> None:
        """Dispose of the engine and its connections."""
        self.engine.dispose()

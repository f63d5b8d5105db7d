"""The database: SQLAlchemy tables, the engine for a URL (SQLite by default, PostgreSQL), migrations to head."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import List, Optional

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

__all__ = ["Base", "Filesystem", "Instance", "RetiredInstance", "Connection", "MountState", "Token", "Grant",
           "DashboardSession", "IdentityGrant",
           "make_engine", "make_sessions", "upgrade", "at_head", "HEAD", "DEFAULT_URL", "WRITE"]  # fmt: skip

DEFAULT_URL = "sqlite:///sharedfs.db"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Filesystem(Base):
    __tablename__ = "filesystems"
    __table_args__ = (
        UniqueConstraint("project", "name"),
        # A global name is unique across every project, whatever runs concurrently (the services
        # also keep a project's own names apart from global ones, under a per-name lock).
        Index("uq_filesystems_global_name", "name", unique=True,
              sqlite_where=text("scope = 'global'"), postgresql_where=text("scope = 'global'")),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(primary_key=True)
    project: Mapped[str] = mapped_column(String(64), index=True)  # the tenant that owns it
    name: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[str] = mapped_column(String(32))  # as the caller wrote it, e.g. "4Gb"
    scope: Mapped[str] = mapped_column(String(16))  # instance | project | global
    fs_type: Mapped[str] = mapped_column(String(32))
    mount_point: Mapped[str] = mapped_column(String(4096))
    mount_options_json: Mapped[str] = mapped_column(Text, default="[]")
    export: Mapped[str] = mapped_column(String(1024), default="")  # empty until the driver made it
    driver: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # creating | available | error | deleting
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # of the pending create: >1 means resumed
    status_detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    # When the DELETE came: its job waits for the instances to unmount, at most --delete-wait from here.
    deleting_since: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True), nullable=True, default=None)

    @property
    def mount_options(self) -> List[str]:
        return json.loads(self.mount_options_json)


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    addresses_json: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    # Its agent's last long-poll, written at most once a minute per API process (services/last_seen.py).
    last_seen: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True), nullable=True, default=None)

    @property
    def addresses(self) -> List[str]:
        return json.loads(self.addresses_json)


class RetiredInstance(Base):
    """An instance id that was deregistered: its own token may not register it again (its
    project's token or an admin may), and no other project may take it."""

    __tablename__ = "retired_instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project: Mapped[str] = mapped_column(String(64))
    retired_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class Connection(Base):
    """An instance connected explicitly to a filesystem (what instance scope means)."""

    __tablename__ = "connections"

    filesystem_id: Mapped[int] = mapped_column(ForeignKey("filesystems.id", ondelete="CASCADE"), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)


class MountState(Base):
    """What an instance's agent last reported for one filesystem."""

    __tablename__ = "mount_states"

    filesystem_id: Mapped[int] = mapped_column(ForeignKey("filesystems.id", ondelete="CASCADE"), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class Grant(Base):
    """An address the driver was told may reach a filesystem (its export ACL)."""

    __tablename__ = "grants"

    filesystem_id: Mapped[int] = mapped_column(ForeignKey("filesystems.id", ondelete="CASCADE"), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)


class IdentityGrant(Base):
    """An instance's credential for a filesystem reached by identity (drivers with access_by =
    "identity", e.g. a cephx key), as the driver last returned it. Kept here so the agents' view is
    built from the database alone; it goes into that instance's own view and nowhere else. No
    foreign key on the instance: a deleted instance's row stays until its credential is revoked."""

    __tablename__ = "identity_grants"

    filesystem_id: Mapped[int] = mapped_column(ForeignKey("filesystems.id", ondelete="CASCADE"), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[str] = mapped_column(String(256))
    options_json: Mapped[str] = mapped_column(Text, default="[]")  # mount options naming the identity

    @property
    def options(self) -> List[str]:
        return json.loads(self.options_json)


class DeletedInstance(Base):
    """An instance the cloud deleted (Nova's instance.delete.end): never registered again, as the
    cloud never reuses an instance id, so a late or redelivered create cannot bring it back."""

    __tablename__ = "deleted_instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deleted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class Token(Base):
    """An API token, stored as the SHA-256 of the secret (the secret itself is shown once)."""

    __tablename__ = "tokens"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | project | instance
    project: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    instance_id: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    expires_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True), nullable=True)  # None: never


class DashboardSession(Base):
    """A dashboard sign-in, shared by every API process. Keyed by the SHA-256 of the cookie's
    session id; the token it acts with is sealed with a key derived from that id, which only the
    browser holds, so the table alone gives away neither a session nor a token."""

    __tablename__ = "dashboard_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    project: Mapped[str] = mapped_column(String(64))  # the project the dashboard opens on
    user: Mapped[str] = mapped_column(String(255), default="")  # shown in the header (Keystone user name)
    sealed_token: Mapped[str] = mapped_column(Text)  # nonce + AES-GCM of the token, base64
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


# Execution option of a session's connection that will write: on SQLite its transaction starts
# with BEGIN IMMEDIATE, so it waits for the write lock up front (busy_timeout) instead of failing
# with "database is locked" when a read transaction would have to become a write one.
WRITE = "sharedfs_write"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")  # ON DELETE CASCADE needs it
            # Readers do not wait for a writer. The mode is the file's and stays; asking for it again
            # while another connection writes fails with "database is locked", so only when not set.
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):
            immediate = connection.get_execution_options().get(WRITE)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    # Each request holds at most one connection; 2 processes x 40 stays under PostgreSQL's 100.
    return create_engine(url, pool_size=10, max_overflow=30, pool_pre_ping=True, pool_timeout=60)


def make_sessions(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


# The newest migration in migrations/versions (tests/unit/test_schema_head.py holds it to Alembic's
# head). A database already there is left as it is without importing Alembic: a tenth of a second
# of CPU at every server start, which a restarted or restarting server does not need to spend.
HEAD = "0007"


def at_head(url: str) -> bool:
    """Whether the database's schema is exactly HEAD (False on any doubt: no table, no file, an error)."""
    if url.startswith("sqlite:///") and not os.path.exists(url.removeprefix("sqlite:///")):
        return False  # connecting would create the file; Alembic does that, with the schema
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except Exception:  # no alembic_version yet (a new database), or unreachable: Alembic says which
        return False
    finally:
        engine.dispose()
    return rows == [HEAD]


def upgrade(url: str) -> None:
    """Bring the schema to the newest migration (Alembic), keeping the data."""
    if at_head(url):
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", os.path.join(os.path.dirname(__file__), "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")

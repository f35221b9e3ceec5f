"""The bandit store's engine: SQLite by default (a file URL), PostgreSQL by URL.

SQLite is made safe for a service answering concurrent requests from several threads (or a few
processes): WAL journal (readers never wait for the writer), a 30 s busy timeout, and write
transactions opened with ``BEGIN IMMEDIATE`` so two writers never both read and then deadlock on
the upgrade to a write lock (SQLite answers that with an immediate "database is locked" that no
busy timeout retries). Reads stay ``BEGIN DEFERRED``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from genart.errors import StoreError
from genart.store.bandit_tables import BanditArmRow, BanditExposureRow, BanditOutcomeRow, BanditTestRow
from genart.store.schema import create_schema

DEFAULT_URL_ENV = "GENART_BANDIT_URL"
DEFAULT_URL = "sqlite:///genart_bandit.db"
BUSY_TIMEOUT_MS = 30_000

TABLES = [BanditTestRow.__table__, BanditArmRow.__table__, BanditExposureRow.__table__, BanditOutcomeRow.__table__]


def default_url() -> str:
    """``$GENART_BANDIT_URL``, else ``sqlite:///genart_bandit.db`` in the working directory."""
    return os.environ.get(DEFAULT_URL_ENV) or DEFAULT_URL


def normalise_url(url: str | Path) -> str:
    """A database URL; a bare path becomes a SQLite file URL."""
    text = str(url)
    if "://" in text:
        return text
    return "sqlite:///" + str(Path(text).expanduser().resolve())


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # pragma: no cover - exercised through every test
        dbapi_conn.isolation_level = None  # the driver stops issuing its own BEGIN; we do it below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:  # pragma: no cover
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | Path | None = None, *, echo: bool = False) -> Engine:
    """An engine for ``url`` (default: :func:`default_url`), with the bandit tables created.

    Raises:
        StoreError: the URL is malformed or the database cannot be opened.
    """
    text = normalise_url(url if url is not None else default_url())
    try:
        if text.startswith("sqlite"):
            memory = text in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in text
            kwargs: dict = {"connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}}
            if memory:
                kwargs["poolclass"] = StaticPool
            else:
                db_path = text.split("///", 1)[-1].split("?", 1)[0]
                if db_path:
                    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(text, echo=echo, **kwargs)
            _configure_sqlite(engine)
        else:
            engine = create_engine(text, echo=echo, pool_pre_ping=True)
        create_tables(engine)
    except (ArgumentError, SQLAlchemyError, OSError, ImportError) as exc:
        raise StoreError(f"cannot open bandit store {text!r}: {exc}",
                         hint="pass a SQLite path or URL (sqlite:///bandit.db) or postgresql+psycopg://user@host/db") from exc
    return engine


def create_tables(engine: Engine) -> None:
    """Creates the bandit tables (only those: the other stages create their own), safely when several
    processes open a fresh store at once."""
    create_schema(engine, TABLES)


@contextmanager
def write_txn(engine: Engine) -> Iterator[Connection]:
    """A write transaction: ``BEGIN IMMEDIATE`` on SQLite, an ordinary one elsewhere."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


@contextmanager
def read_txn(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        with conn.begin():
            yield conn

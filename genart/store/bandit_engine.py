"""The bandit exposure log's engine (:mod:`genart.store.exposure_log`) and where the bandit commands
find their store: SQLite by default (a file URL), PostgreSQL by URL.

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
from typing import Any, Iterator, cast

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from genart.errors import InvalidArgumentError, StoreError
from genart.store.bandit_tables import (
    BanditAllocationRow,
    BanditArmRow,
    BanditCandidateRow,
    BanditExposureRow,
    BanditOutcomeRow,
    BanditProposalRow,
    BanditTestRow,
    BanditTriggerRow,
)
from genart.store.schema import create_schema

DEFAULT_URL_ENV = "GENART_BANDIT_URL"
STORE_FILE = "genart.sqlite"  # the run store's file in an output folder (genart.store.db.Store)
# where `genart run`, `genart app` and `genart batch` put their store when not told otherwise, in the
# order the bandit commands look for one; genart_bandit.db is where older versions kept tests
DEFAULT_FOLDERS = (".", "runs")
LEGACY_FILE = "genart_bandit.db"
DEFAULT_URL = f"sqlite:///runs/{STORE_FILE}"
BUSY_TIMEOUT_MS = 30_000

TABLES: list[Table] = [cast(Table, row.__table__) for row in (
    BanditTestRow, BanditArmRow, BanditExposureRow, BanditOutcomeRow, BanditAllocationRow, BanditTriggerRow,
    BanditProposalRow, BanditCandidateRow)]


def default_url() -> str:
    """``$GENART_BANDIT_URL``, else the store an output folder here holds (``./genart.sqlite``, then
    ``./runs/genart.sqlite``, the default ``--out`` of ``genart run`` and ``genart app``), else
    ``./runs/genart.sqlite`` to be created."""
    env = os.environ.get(DEFAULT_URL_ENV)
    if env:
        return env
    found = _find_default()
    return normalise_url(found) if found is not None else DEFAULT_URL


def _find_default() -> Path | None:
    for folder in DEFAULT_FOLDERS:
        p = Path(folder) / STORE_FILE
        if p.is_file():
            return p
    legacy = Path(LEGACY_FILE)
    return legacy if legacy.is_file() else None


def _store_in_folder(folder: Path) -> Path:
    """The store of an output folder, or of the output folder it lies in (``runs/runs/<run id>`` is in
    ``runs``): the nearest ``genart.sqlite`` at or above it, else ``<folder>/genart.sqlite``."""
    folder = folder.expanduser().resolve()
    for parent in (folder, *list(folder.parents)[:3]):
        if (parent / STORE_FILE).is_file():
            return parent / STORE_FILE
    return folder / STORE_FILE


def locate(store: str | Path | None = None, out: str | Path | None = None, *, must_exist: bool = False) -> str:
    """The database URL the bandit commands use: one store per output folder, shared with ``genart
    run``, ``genart app`` and ``genart batch``.

    Args:
        store: a database URL, a SQLite file, or an output folder (its ``genart.sqlite``).
        out: an output folder, as ``--out`` names it for every other command.
        must_exist: the caller reads tests (report, stop, evaluate): a SQLite store that is not
            there is an error, not a new empty file.

    Raises:
        InvalidArgumentError: both ``store`` and ``out`` given.
        StoreError: ``must_exist`` and no such store.
    """
    if store is not None and out is not None:
        raise InvalidArgumentError("--store and --out", f"{store}, {out}", "one of them: --out DIR names the output "
                                   "folder (its genart.sqlite), --store a database URL")
    target = store if store is not None else out
    if target is None:
        env = os.environ.get(DEFAULT_URL_ENV)
        if env:
            return env
        found = _find_default()
        if found is None:
            if must_exist:
                looked = ", ".join(str(Path(f) / STORE_FILE) for f in DEFAULT_FOLDERS)
                raise StoreError(f"no genart store here (looked for {looked})",
                                 hint="pass --out DIR, the folder `genart run`, `genart app` or `genart batch` wrote")
            return DEFAULT_URL
        return normalise_url(found)
    text = str(target)
    if "://" in text:
        return text
    path = Path(text).expanduser()
    if path.is_dir() or out is not None or not path.suffix:
        path = _store_in_folder(path)
    if must_exist and not path.is_file():
        raise StoreError(f"no genart store at {path}",
                         hint="pass --out DIR, the folder `genart run`, `genart app` or `genart batch` wrote")
    return normalise_url(path)


def run_store_url(out: str | Path, db: str | None = None) -> str:
    """The database URL of an output folder's run store (:class:`genart.store.db.Store`'s): ``db``
    when given, else the folder's ``genart.sqlite``."""
    return db or f"sqlite:///{(Path(out).resolve() / STORE_FILE).resolve()}"


def normalise_url(url: str | Path) -> str:
    """A database URL; a bare path becomes a SQLite file URL."""
    text = str(url)
    if "://" in text:
        return text
    return "sqlite:///" + str(Path(text).expanduser().resolve())


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - exercised through every test
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
            kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}}
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
    """Creates the bandit tables (only those: the other stages create their own), and the columns a newer
    genart added to a store an older one made, safely when several processes open a fresh store at once."""
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

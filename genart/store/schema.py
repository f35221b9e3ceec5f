"""The declarative base every genart table hangs off, so one ``create_schema`` makes the whole store."""

from __future__ import annotations

import random
import time
from typing import Sequence

from sqlalchemy import Table, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


def _add_missing_columns(engine: Engine, tables: Sequence[Table] | None = None) -> None:
    """Columns a newer genart added to a table an older one created (nullable, so old rows read as None),
    and unique indexes it declares since (skipped where old rows already break them)."""
    insp = inspect(engine)
    existing_tables = set(insp.get_table_names())
    for table in tables if tables is not None else Base.metadata.sorted_tables:
        if table.name not in existing_tables:
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            kind = col.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as conn:
                    conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {kind}'))
            except (OperationalError, ProgrammingError) as exc:  # another process added it first
                if "duplicate" not in str(exc).lower() and "already exists" not in str(exc).lower():
                    raise
        have_ix = {ix["name"] for ix in insp.get_indexes(table.name)}
        for ix in table.indexes:
            if ix.unique and ix.name not in have_ix:
                try:
                    ix.create(engine, checkfirst=True)
                except IntegrityError:  # rows an older genart wrote repeat the key: readers cope with them
                    pass
                except (OperationalError, ProgrammingError) as exc:
                    if "already exists" not in str(exc).lower() and "locked" not in str(exc).lower():
                        raise


def create_schema(engine: Engine, tables: Sequence[Table] | None = None, attempts: int = 8) -> None:
    """Create every table (or only ``tables``), and any column added since the store was made, safely
    under concurrency.

    Two processes opening a fresh store at once both see no tables and both try ``CREATE TABLE``; the
    loser's "already exists" (or SQLite's "database is locked", which a read-then-write DDL transaction
    gets without waiting) is not an error here: it tries again and finds the tables made.
    """
    for i in range(attempts):
        try:
            Base.metadata.create_all(engine, tables=list(tables) if tables is not None else None)
            _add_missing_columns(engine, tables)
            return
        except (OperationalError, ProgrammingError) as exc:
            msg = str(exc).lower()
            if i == attempts - 1 or not ("already exists" in msg or "duplicate" in msg or "locked" in msg):
                raise
            time.sleep(0.05 * (i + 1) + random.random() * 0.05)  # jittered, so racers do not retry in step

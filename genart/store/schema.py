"""The declarative base every genart table hangs off, so one ``create_schema`` makes the whole store."""

from __future__ import annotations

import time

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


def _add_missing_columns(engine: Engine, tables=None) -> None:
    """Columns a newer genart added to a table an older one created (nullable, so old rows read as None).

    ``tables``: only these (the bandit store creates its own tables only), default every table."""
    insp = inspect(engine)
    existing_tables = set(insp.get_table_names())
    for table in (Base.metadata.sorted_tables if tables is None else tables):
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


def create_schema(engine: Engine, attempts: int = 5) -> None:
    """Create every table (and any column added since the store was made), safely under concurrency.

    Two processes opening a fresh store at once both see no tables and both try ``CREATE TABLE``; the
    loser's "already exists" is not an error here: it tries again and finds the tables made.
    """
    for i in range(attempts):
        try:
            Base.metadata.create_all(engine)
            _add_missing_columns(engine)
            return
        except (OperationalError, ProgrammingError) as exc:
            msg = str(exc).lower()
            if i == attempts - 1 or not ("already exists" in msg or "duplicate" in msg or "locked" in msg):
                raise
            time.sleep(0.05 * (i + 1))

"""The declarative base every genart table hangs off, so one ``create_all`` makes the whole store."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass

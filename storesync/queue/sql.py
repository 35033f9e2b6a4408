"""The few expressions that differ between PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Float, bindparam, cast, func, literal_column, type_coerce
from sqlalchemy.sql.elements import BindParameter

from storesync.storage.types import UTCDateTime


def instant(name: str, value: datetime) -> BindParameter[datetime]:
    """A bound timestamp parameter that goes through the UTC column type."""
    return bindparam(name, value, type_=UTCDateTime)


def seconds_between(
    dialect: str, later: ColumnElement[datetime], earlier: ColumnElement[datetime]
) -> ColumnElement[float]:
    """``later - earlier`` in seconds, as a float."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float)
    return type_coerce(
        (func.julianday(later) - func.julianday(earlier)) * literal_column("86400.0"), Float
    )

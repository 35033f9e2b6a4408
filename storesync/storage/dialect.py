"""INSERT … ON CONFLICT for the database in use, chosen in one place.

SQLite and PostgreSQL both support ``ON CONFLICT DO NOTHING`` and ``ON CONFLICT DO UPDATE``,
but SQLAlchemy builds them with each dialect's own ``insert``. The rest of the service calls
these helpers with the database's dialect name (:attr:`Database.dialect`) and never imports
``sqlalchemy.dialects`` itself (a test checks it). Each helper returns the ``INSERT`` with its
conflict clause; the caller adds the rows (``.values`` or ``.from_select``) and any
``.returning``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, TextClause
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Insert

#: A column of a conflict target: its name or the column itself.
ConflictColumn = str | ColumnElement[Any]
#: A condition: an expression, or literal SQL (``text``) where it must match an index's own.
Condition = ColumnElement[bool] | TextClause


def _insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database dialect {dialect!r} (expected sqlite or postgresql)")


def insert_ignoring_conflicts(
    dialect: str,
    table: Table,
    *,
    key: Sequence[ConflictColumn] | None = None,
    key_where: Condition | None = None,
) -> Insert:
    """``INSERT INTO table … ON CONFLICT [(key) [WHERE key_where]] DO NOTHING``.

    Without ``key`` a row that conflicts with any unique constraint is skipped; with it, only
    one that conflicts on those columns (``key_where`` names a partial unique index by its
    predicate). ``RETURNING`` then yields nothing for a skipped row. With ``.from_select`` the
    SELECT needs a WHERE clause on SQLite, which otherwise parses ``ON CONFLICT`` as a join's.
    """
    return _insert(dialect, table).on_conflict_do_nothing(index_elements=key, index_where=key_where)


def upsert(
    dialect: str,
    table: Table,
    *,
    key: Sequence[ConflictColumn],
    replace: Sequence[str] = (),
    set_: Mapping[str, Any] | None = None,
    where: Condition | None = None,
) -> Insert:
    """``INSERT INTO table … ON CONFLICT (key) DO UPDATE``: insert, or update the existing row.

    On a conflict the columns named in ``replace`` take the new row's values
    (``excluded.<column>``) and those in ``set_`` the given values; with ``where`` only an
    existing row that matches it is updated (else the row is left alone and ``RETURNING``
    yields nothing).
    """
    if not replace and not set_:
        raise ValueError("upsert needs columns to update: give replace or set_")
    insert = _insert(dialect, table)
    values: dict[str, Any] = {column: insert.excluded[column] for column in replace}
    values.update(set_ or {})
    return insert.on_conflict_do_update(index_elements=key, set_=values, where=where)

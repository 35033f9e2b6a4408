"""``storesync.storage.dialect``: INSERT … ON CONFLICT on SQLite and PostgreSQL, chosen in one
place.

The helpers run against a probe table of the test's own (a primary key, a partial unique
index) on both databases. A source scan checks that no module outside ``storesync/storage``
picks a dialect's ``insert`` itself; it needs no database.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import Column, Index, Integer, MetaData, String, Table, select, text, update
from sqlalchemy.exc import IntegrityError

import storesync
from storesync.storage import Database
from storesync.storage.dialect import insert_ignoring_conflicts, upsert

PACKAGE = Path(storesync.__file__).parent

_metadata = MetaData()
PROBE = Table(
    "dialect_probe",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(40), nullable=False),
    Column("state", String(10), nullable=False),
    Column("note", String(40)),
    Column("hits", Integer, nullable=False),
    # One active row per name, like the queue's one active job per store and period.
    Index(
        "ux_dialect_probe_active_name",
        "name",
        unique=True,
        sqlite_where=text("state = 'active'"),
        postgresql_where=text("state = 'active'"),
    ),
)
ACTIVE = text("state = 'active'")


@pytest.fixture
async def probe(database: Database) -> Database:
    async with database.transaction() as conn:
        await conn.run_sync(_metadata.create_all)
    return database


async def _rows(database: Database) -> list[tuple[object, ...]]:
    async with database.read() as conn:
        result = await conn.execute(
            select(PROBE.c.id, PROBE.c.name, PROBE.c.state, PROBE.c.note, PROBE.c.hits).order_by(
                PROBE.c.id
            )
        )
        return [tuple(row) for row in result]


def _row(
    id_: int, name: str, *, state: str = "active", note: str = "", hits: int = 0
) -> dict[str, object]:
    return {"id": id_, "name": name, "state": state, "note": note, "hits": hits}


# -- insert_ignoring_conflicts ---------------------------------------------------------------


async def test_insert_ignoring_conflicts_skips_a_row_conflicting_with_any_constraint(
    probe: Database,
) -> None:
    insert = insert_ignoring_conflicts(probe.dialect, PROBE)
    async with probe.transaction() as conn:
        first = await conn.scalar(insert.values(_row(1, "a", note="first")).returning(PROBE.c.id))
        same_id = await conn.scalar(insert.values(_row(1, "b")).returning(PROBE.c.id))
        same_name = await conn.scalar(insert.values(_row(2, "a")).returning(PROBE.c.id))
    assert (first, same_id, same_name) == (1, None, None)
    assert await _rows(probe) == [(1, "a", "active", "first", 0)]


async def test_insert_ignoring_conflicts_on_a_partial_index_skips_only_its_conflicts(
    probe: Database,
) -> None:
    """With a key and its index's predicate only that index's conflicts are skipped: a second
    active "a" is, an "a" after the first is done is not, and a repeated id still fails."""
    insert = insert_ignoring_conflicts(probe.dialect, PROBE, key=["name"], key_where=ACTIVE)
    async with probe.transaction() as conn:
        await conn.execute(insert.values(_row(1, "a")))
        await conn.execute(insert.values(_row(2, "a")))
        await conn.execute(update(PROBE).where(PROBE.c.id == 1).values(state="done"))
        await conn.execute(insert.values(_row(3, "a")))
    assert [(r[0], r[2]) for r in await _rows(probe)] == [(1, "done"), (3, "active")]
    with pytest.raises(IntegrityError):
        async with probe.transaction() as conn:
            await conn.execute(insert.values(_row(3, "b")))


async def test_insert_ignoring_conflicts_from_a_select(probe: Database) -> None:
    insert = insert_ignoring_conflicts(probe.dialect, PROBE, key=["name"], key_where=ACTIVE)
    async with probe.transaction() as conn:
        await conn.execute(insert.values(_row(1, "a")))
        # SQLite needs a WHERE in an INSERT … SELECT … ON CONFLICT (else ON reads as a join's).
        chosen = select(
            (PROBE.c.id + 1).label("id"), PROBE.c.name, PROBE.c.state, PROBE.c.note, PROBE.c.hits
        ).where(PROBE.c.id == 1)
        await conn.execute(insert.from_select(["id", "name", "state", "note", "hits"], chosen))
    assert [r[0] for r in await _rows(probe)] == [1]


# -- upsert ----------------------------------------------------------------------------------


async def test_upsert_inserts_new_rows_and_updates_existing_ones(probe: Database) -> None:
    """On a conflict ``replace`` takes the new row's values, ``set_`` its own; the columns named
    in neither keep the old row's."""
    statement = upsert(probe.dialect, PROBE, key=["id"], replace=["note"], set_={"hits": 7})
    async with probe.transaction() as conn:
        await conn.execute(statement.values([_row(1, "a", note="old"), _row(2, "b")]))
        await conn.execute(
            statement.values([_row(1, "renamed", state="done", note="new", hits=1), _row(3, "c")])
        )
    assert await _rows(probe) == [
        (1, "a", "active", "new", 7),
        (2, "b", "active", "", 0),
        (3, "c", "active", "", 0),
    ]


async def test_upsert_where_leaves_a_non_matching_row_alone(probe: Database) -> None:
    """Like the scheduler's lease: taken over only when the condition holds; RETURNING tells."""
    statement = upsert(
        probe.dialect, PROBE, key=[PROBE.c.id], replace=["note", "hits"], where=PROBE.c.hits < 5
    ).returning(PROBE.c.id)
    async with probe.transaction() as conn:
        inserted = await conn.scalar(statement.values(_row(1, "a", note="one", hits=5)))
        refused = await conn.scalar(statement.values(_row(1, "a", note="two", hits=1)))
        await conn.execute(update(PROBE).values(hits=0))
        taken = await conn.scalar(statement.values(_row(1, "a", note="three", hits=2)))
    assert (inserted, refused, taken) == (1, None, 1)
    assert await _rows(probe) == [(1, "a", "active", "three", 2)]


def test_an_unknown_dialect_or_an_empty_update_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported database dialect 'mysql'"):
        insert_ignoring_conflicts("mysql", PROBE)
    with pytest.raises(ValueError, match="replace or set_"):
        upsert("sqlite", PROBE, key=["id"])


# -- no other module picks a dialect's insert ------------------------------------------------

#: The dialects whose ``insert`` only storesync/storage may choose between.
DIALECT_MODULES = frozenset({"sqlalchemy.dialects.postgresql", "sqlalchemy.dialects.sqlite"})
INSERT_NAMES = frozenset({"insert", "Insert"})


def dialect_insert_uses(source: str, where: str) -> list[str]:
    """Every way one module's source reaches a dialect's ``insert``: importing the dialect
    module, importing its ``insert``, or naming ``….dialects.<name>.insert``. Importing a
    dialect's types (``ARRAY``, ``JSONB``) is fine."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            if node.module == "sqlalchemy.dialects" and names & {"postgresql", "sqlite"}:
                found.append(f"{line}: imports the dialect {sorted(names)}")
            elif node.module.startswith(tuple(DIALECT_MODULES)) and names & INSERT_NAMES:
                found.append(f"{line}: imports {node.module}'s insert")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(tuple(DIALECT_MODULES)):
                    found.append(f"{line}: imports {alias.name}")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in INSERT_NAMES
            and ast.unparse(node.value).endswith(("dialects.postgresql", "dialects.sqlite"))
        ):
            found.append(f"{line}: uses {ast.unparse(node)}")
    return found


def package_dialect_insert_uses(root: Path) -> list[str]:
    """:func:`dialect_insert_uses` over the package at ``root``, outside ``storage/``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if not relative.startswith("storage/"):
            found += dialect_insert_uses(path.read_text(encoding="utf-8"), relative)
    return found


def test_only_the_storage_layer_chooses_a_dialects_insert() -> None:
    assert package_dialect_insert_uses(PACKAGE) == []


def test_the_scan_finds_each_way_of_choosing_one() -> None:
    """Each form is caught (before ``storage/dialect.py`` the first one was in
    ``providers/klaviyo_budget.py``, ``providers/provider_cache.py``, ``api/webhooks.py``,
    ``queue/manager.py``, ``cache.py`` and ``scheduler.py``)."""
    uses = [
        "from sqlalchemy.dialects import postgresql, sqlite",
        "from sqlalchemy.dialects import sqlite",
        "from sqlalchemy.dialects.postgresql import insert",
        "from sqlalchemy.dialects.sqlite import Insert",
        "from sqlalchemy.dialects.postgresql.dml import insert",
        "import sqlalchemy.dialects.postgresql as pg",
        "import sqlalchemy\nq = sqlalchemy.dialects.sqlite.insert(t)",
    ]
    for source in uses:
        assert dialect_insert_uses(source, "m.py"), source


def test_the_scan_allows_dialect_types_and_the_generic_insert() -> None:
    allowed = """
from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from storesync.storage.dialect import insert_ignoring_conflicts, upsert
"""
    assert dialect_insert_uses(allowed, "m.py") == []

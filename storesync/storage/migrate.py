"""Bring a database to the newest schema (``storesync init``; ``serve``, ``worker`` and every
command on start).

A database already at :data:`HEAD` is detected with one query, without loading Alembic, so
commands start fast. On PostgreSQL an advisory lock makes concurrent starts safe: several
workers launched at once migrate one after the other, and all but the first find nothing to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from storesync.errors import StoresyncError
from storesync.storage.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration; a test checks it against the migrations directory.
HEAD = "0004"
_MIGRATION_LOCK = 0x5702E5C  # an arbitrary constant: "storesync migrate"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(database: Database, revision: str = "head") -> None:
    """Apply every pending migration up to ``revision``.

    Raises :class:`StoresyncError` when the database was migrated by a newer storesync than
    this one (a machine left behind during an upgrade), rather than Alembic's traceback.
    """
    found = await current_revision(database)
    if revision == "head" and found == HEAD:
        return
    if found is not None and found not in known_revisions():
        raise StoresyncError(
            f"the database's schema is at revision {found}, which this storesync does not know "
            f"(it knows up to {HEAD}): a newer version migrated it; upgrade storesync here too"
        )
    async with database.engine.begin() as conn:
        if database.is_postgres:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        await conn.run_sync(_upgrade, revision)


async def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None before the first migration."""
    async with database.engine.connect() as conn:
        try:
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:
            return None  # no alembic_version table yet
        return str(version) if version is not None else None


def known_revisions() -> set[str]:
    """Every revision in the migrations directory (loads Alembic)."""
    from alembic.script import ScriptDirectory

    return {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }


def head_revision() -> str | None:
    """The head of the migrations directory (loads Alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()

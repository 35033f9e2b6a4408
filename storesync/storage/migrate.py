"""Bring a database to the newest schema (``storesync init``; ``serve`` and ``worker`` on start).

On PostgreSQL an advisory lock makes concurrent starts safe: several workers launched at once
migrate one after the other, and all but the first find nothing to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from storesync.storage.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x5702E5C  # an arbitrary constant: "storesync migrate"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(database: Database, revision: str = "head") -> None:
    """Apply every pending migration up to ``revision``."""
    async with database.engine.begin() as conn:
        if database.is_postgres:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        await conn.run_sync(_upgrade, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None before the first migration."""
    async with database.engine.connect() as conn:
        return await conn.run_sync(_current)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()

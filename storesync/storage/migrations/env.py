"""Alembic environment. storesync runs migrations through ``storesync.storage.migrate``,
which hands over an open connection; the ``alembic`` command line works too (it reads the URL
from STORESYNC_DATABASE_URL)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from storesync.settings import Settings
from storesync.storage.engine import connect
from storesync.storage.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    database = connect(Settings())
    async with database.engine.begin() as conn:
        await conn.run_sync(_run)
    await database.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_standalone())

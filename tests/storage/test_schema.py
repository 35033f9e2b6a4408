"""The migrated schema equals the declared models, and the seed's SQL runs unchanged."""

from __future__ import annotations

import os
import stat
from datetime import date
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from storesync.errors import StoresyncError
from storesync.queue import JobQueue
from storesync.settings import Settings
from storesync.storage import Database, migrate
from storesync.storage.crypto import SecretBox
from storesync.storage.migrate import HEAD, current_revision, head_revision
from storesync.storage.models import Base
from storesync.stores import StoreDirectory
from tests.conftest import add_store


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_build_exactly_the_declared_schema(database: Database) -> None:
    async with database.engine.connect() as conn:
        differences = await conn.run_sync(_diff)
    assert differences == []
    assert await current_revision(database) == head_revision()


def test_the_head_constant_is_the_newest_migration() -> None:
    # migrate() takes a database at HEAD for up to date without loading Alembic: a HEAD left
    # behind would leave every existing database one migration short.
    assert HEAD == head_revision()


async def test_migrating_twice_changes_nothing(database: Database) -> None:
    await migrate(database)
    assert await current_revision(database) == head_revision()


async def test_a_database_migrated_by_a_newer_version_is_refused_with_the_reason(
    database: Database,
) -> None:
    async with database.transaction() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoresyncError, match="revision 9999, which this storesync does not know"):
        await migrate(database)
    assert await current_revision(database) == "9999"  # nothing was touched


def _index_names(connection: Connection) -> set[str]:
    return {i["name"] for i in inspect(connection).get_indexes("sync_queue") if i["name"]}


async def test_the_queue_indexes_exist(database: Database) -> None:
    async with database.engine.connect() as conn:
        names = await conn.run_sync(_index_names)
    assert {"uq_sync_queue_active_period", "uq_sync_queue_processing_store"} <= names


SEED_JOBS_SQL = """
SELECT
  id,
  store_id,
  status,
  period_start,
  period_end,
  retry_count,
  queued_at,
  started_at,
  completed_at,
  error_message
FROM sync_queue
ORDER BY queued_at DESC
LIMIT 20;
"""

SEED_CACHE_SQL = """
SELECT
  id,
  store_id,
  data_type,
  period_start,
  period_end,
  source,
  synced_at
FROM store_sync_cache
ORDER BY synced_at DESC
LIMIT 20;
"""

SEED_CLEANUP_SQL = """
UPDATE sync_queue
SET status = 'failed',
    error_message = 'Manual cleanup',
    completed_at = NOW()
WHERE status = 'processing'
  AND started_at < NOW() - INTERVAL '10 minutes';
"""


async def test_the_seed_monitoring_and_cleanup_sql_runs_unchanged(
    database: Database, stores: StoreDirectory, settings: Settings, backend: str
) -> None:
    queue = JobQueue(database, settings)
    store = await add_store(stores)
    job = (await queue.enqueue(store, date(2026, 1, 1), date(2026, 1, 31))).job
    await queue.claim("w1")
    async with database.transaction() as conn:
        rows = (await conn.execute(text(SEED_JOBS_SQL))).mappings().all()
        assert [r["id"] for r in rows] == [job.id]
        assert rows[0]["status"] == "processing"
        assert (await conn.execute(text(SEED_CACHE_SQL))).all() == []
        stats = (await conn.execute(text("SELECT * FROM v_sync_queue_stats;"))).mappings().one()
        assert stats["processing"] == 1
    if backend != "postgresql":
        return  # NOW() and INTERVAL are PostgreSQL's; the seed ran on Supabase.
    async with database.transaction() as conn:
        # Started just now: the cleanup leaves it alone.
        assert (await conn.execute(text(SEED_CLEANUP_SQL))).rowcount == 0
        await conn.execute(text("UPDATE sync_queue SET started_at = NOW() - INTERVAL '11 minutes'"))
        assert (await conn.execute(text(SEED_CLEANUP_SQL))).rowcount == 1
    cleaned = await queue.get(job.id)
    assert cleaned.status.value == "failed" and cleaned.error_message == "Manual cleanup"


async def test_credentials_are_encrypted_at_rest(
    database: Database, stores: StoreDirectory
) -> None:
    store = await add_store(stores)
    async with database.read() as conn:
        row = (
            await conn.execute(
                text("SELECT shopify_token_encrypted, klaviyo_key_encrypted FROM stores")
            )
        ).one()
    assert "shpat_secret_1" not in row[0] and "pk_secret_1" not in row[1]
    creds = await stores.credentials(store)
    assert (creds.shopify_token, creds.klaviyo_key) == ("shpat_secret_1", "pk_secret_1")
    assert "shpat_secret_1" not in repr(creds)


def test_a_generated_key_file_is_private_and_reused(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path)
    box = SecretBox.from_settings(settings)
    secret = box.encrypt("shpat_abc")
    mode = stat.S_IMODE(os.stat(settings.key_file).st_mode)
    assert mode == 0o600
    assert SecretBox.from_settings(settings).decrypt(secret) == "shpat_abc"


def test_a_different_key_cannot_read_the_credentials(tmp_path: Any) -> None:
    secret = SecretBox.from_settings(Settings(data_dir=tmp_path, secret_key="one")).encrypt("x")  # type: ignore[arg-type]
    other = SecretBox.from_settings(Settings(data_dir=tmp_path, secret_key="two"))  # type: ignore[arg-type]
    with pytest.raises(Exception, match="cannot be decrypted"):
        other.decrypt(secret)

"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL.

PostgreSQL tests get a fresh database per test, cloned from a template migrated once per
session (``CREATE DATABASE … TEMPLATE``), so tests never share state. Outside CI a missing
PostgreSQL skips those tests; with ``CI=true`` it fails them, because CI must run them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from storesync.queue import JobQueue
from storesync.settings import Settings
from storesync.storage import Database, connect, migrate
from storesync.storage.crypto import SecretBox
from storesync.stores import StoreDirectory

PG_ADMIN_URL = os.environ.get(
    "STORESYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _create_template(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}"')
    await _admin(f'CREATE DATABASE "{name}"')
    database = connect(Settings(database_url=pg_url(name)))
    await migrate(database)
    await database.dispose()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """The name of a migrated template database, or None when PostgreSQL is unreachable."""
    name = f"storesync_tpl_{os.getpid()}"
    try:
        asyncio.run(_create_template(name))
    except (OSError, asyncpg.PostgresError) as exc:
        if IN_CI:
            raise RuntimeError(f"PostgreSQL is required in CI: {exc}") from exc
        yield None
        return
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: object, pg_template: str | None) -> Iterator[str]:
    """A URL of a fresh, migrated database of the current backend."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/storesync.db"
        database = connect(Settings(database_url=url, data_dir=tmp_path))  # type: ignore[arg-type]
        asyncio.run(_migrate_and_close(database))
        yield url
        return
    if pg_template is None:
        pytest.skip("PostgreSQL is not reachable (it is required, and runs, in CI)")
    name = f"storesync_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield pg_url(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _migrate_and_close(database: Database) -> None:
    await migrate(database)
    await database.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: object) -> Settings:
    return Settings(
        database_url=db_url,
        data_dir=tmp_path,  # type: ignore[arg-type]
        secret_key="test-secret-key",  # type: ignore[arg-type]
        retry_base_seconds=10,
    )


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = connect(settings)
    yield database
    await database.dispose()


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(database: Database, settings: Settings, clock: FakeClock) -> JobQueue:
    return JobQueue(database, settings, clock=clock)


@pytest.fixture
def stores(database: Database, settings: Settings) -> StoreDirectory:
    return StoreDirectory(database, SecretBox.from_settings(settings))


async def add_store(stores: StoreDirectory, n: int = 1, account: str = "default") -> int:
    info = await stores.add(
        name=f"Store {n}",
        shopify_domain=f"store-{n}.myshopify.com",
        shopify_token=f"shpat_secret_{n}",
        klaviyo_key=f"pk_secret_{n}",
        timezone="America/New_York",
        account=account,
    )
    return info.id

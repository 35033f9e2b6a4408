"""Migration 0002 on a database that already has tokens: they keep working, as normal-scope
tokens without expiry, on SQLite (whose ``api_tokens`` table is rebuilt) and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from storesync.accounts import ACCOUNTS, hash_token, list_tokens
from storesync.serving.tokens import TokenAuthority
from storesync.settings import Settings
from storesync.storage import Database, connect, migrate
from storesync.storage.migrate import HEAD, current_revision
from tests.conftest import _admin, pg_url


@pytest.fixture
async def blank(backend: str, tmp_path: Path, pg_template: str | None) -> AsyncIterator[Database]:
    """An empty database of the backend, not migrated at all."""
    if backend == "sqlite":
        database = connect(Settings(database_url=f"sqlite:///{tmp_path}/old.db", data_dir=tmp_path))
        yield database
        await database.dispose()
        return
    if pg_template is None:
        pytest.skip("PostgreSQL is not reachable (it is required, and runs, in CI)")
    name = f"storesync_m_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    database = connect(Settings(database_url=pg_url(name)))
    yield database
    await database.dispose()
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_tokens_made_before_0002_keep_working(blank: Database) -> None:
    await migrate(blank, "0001")
    now = datetime.now(UTC)
    async with blank.transaction() as conn:
        account_id = await conn.scalar(
            insert(ACCOUNTS).values(name="old", created_at=now).returning(ACCOUNTS.c.id)
        )
        # The 0001 table has no scope, expiry or revocation columns.
        await conn.execute(
            text(
                "INSERT INTO api_tokens (account_id, token_hash, label, created_at) "
                "VALUES (:account, :hash, 'from 0001', :now)"
            ),
            {"account": account_id, "hash": hash_token("sst_made_before_0002"), "now": now},
        )

    await migrate(blank)

    assert await current_revision(blank) == HEAD
    (token,) = await list_tokens(blank, account="old")
    assert (token.label, token.scope, token.expires_at, token.revoked_at) == (
        "from 0001",
        "normal",
        None,
        None,
    )
    account = await TokenAuthority(blank).account("sst_made_before_0002")
    assert account is not None and account.name == "old"

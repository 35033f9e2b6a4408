"""Accounts (tenants) and their API tokens. Tokens are shown once and stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync.errors import InputError
from storesync.storage.engine import Database
from storesync.storage.models import Account, ApiToken, table_of

ACCOUNTS = table_of(Account)
TOKENS = table_of(ApiToken)
TOKEN_PREFIX = "sst_"  # noqa: S105 - a prefix, not a secret
DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True, slots=True)
class AccountRef:
    id: int
    name: str


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no salt or stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("an account name must have 1 to 200 characters")
    return name


async def ensure_account(conn: AsyncConnection, name: str) -> AccountRef:
    """The account called ``name``, created when new (inside the caller's transaction)."""
    name = _check_name(name)
    row = (await conn.execute(select(ACCOUNTS).where(ACCOUNTS.c.name == name))).first()
    if row is None:
        new_id = await conn.scalar(
            insert(ACCOUNTS)
            .values(name=name, created_at=datetime.now(UTC))
            .returning(ACCOUNTS.c.id)
        )
        return AccountRef(int(new_id or 0), name)
    return AccountRef(int(row.id), row.name)


async def create_token(database: Database, account: str, label: str | None = None) -> str:
    """Create an API token for ``account`` (created when new). The token is returned once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with database.transaction(immediate=True) as conn:
        ref = await ensure_account(conn, account)
        await conn.execute(
            insert(TOKENS).values(
                account_id=ref.id,
                token_hash=hash_token(token),
                label=label,
                created_at=datetime.now(UTC),
            )
        )
    return token

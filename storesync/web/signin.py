"""Who a visitor is: API tokens typed into the sign-in form, and one-time sign-in links.

A web session is tied to the API token it was opened with (see :mod:`storesync.web.session`):
every request checks that the token still exists, so deleting a token signs its browser
sessions out.

A one-time sign-in link (``/sign-in/once/<secret>``, printed by ``storesync demo``) carries
256 random bits. Only their SHA-256 is stored, in a row of table ``leases`` named
``signin:<hash>``, held by the token the link signs in with and expiring after
:data:`LINK_SECONDS`. Redeeming deletes the row in the same statement that reads it, so a link
works once, even when two requests race for it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select

from storesync.accounts import ACCOUNTS, TOKENS, AccountRef, hash_token
from storesync.storage.engine import Database
from storesync.storage.models import Lease, table_of

LEASES = table_of(Lease)
LINK_PREFIX = "signin:"
LINK_SECRET_PREFIX = "sst_once_"  # noqa: S105 - a prefix, not a secret
#: How long a one-time sign-in link stays valid.
LINK_SECONDS = 15 * 60


async def account_of_token(database: Database, token: str) -> tuple[AccountRef, int] | None:
    """The account of an API token and the token's id, or None for an unknown token."""
    query = (
        select(ACCOUNTS.c.id, ACCOUNTS.c.name, TOKENS.c.id.label("token_id"))
        .join(TOKENS, TOKENS.c.account_id == ACCOUNTS.c.id)
        .where(TOKENS.c.token_hash == hash_token(token.strip()))
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return AccountRef(int(row.id), row.name), int(row.token_id)


async def account_of_session(
    database: Database, account_id: int, token_id: int
) -> AccountRef | None:
    """The session's account, while its token still exists and belongs to it."""
    query = (
        select(ACCOUNTS.c.id, ACCOUNTS.c.name)
        .join(TOKENS, TOKENS.c.account_id == ACCOUNTS.c.id)
        .where(TOKENS.c.id == token_id, ACCOUNTS.c.id == account_id)
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return AccountRef(int(row.id), row.name) if row is not None else None


def _link_name(secret: str) -> str:
    return LINK_PREFIX + hashlib.sha256(secret.encode()).hexdigest()


async def create_sign_in_link(
    database: Database, token: str, *, seconds: float = LINK_SECONDS
) -> str:
    """A one-time secret that signs in as ``token``'s account; put it in ``/sign-in/once/…``."""
    found = await account_of_token(database, token)
    if found is None:
        raise ValueError("a sign-in link needs an existing API token")
    _account, token_id = found
    # Shaped like a storesync secret, so the log redaction scrubs it from access logs too.
    secret = LINK_SECRET_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with database.transaction() as conn:
        # Expired links are useless: drop them whenever a new one is made.
        await conn.execute(
            delete(LEASES).where(LEASES.c.name.like(LINK_PREFIX + "%"), LEASES.c.expires_at < now)
        )
        await conn.execute(
            insert(LEASES).values(
                name=_link_name(secret),
                holder=f"token:{token_id}",
                expires_at=now + timedelta(seconds=seconds),
            )
        )
    return secret


async def redeem_sign_in_link(database: Database, secret: str) -> int | None:
    """The token id a link signs in with, consuming the link; None if used, expired or bogus."""
    if not secret or len(secret) > 200:
        return None
    async with database.transaction() as conn:
        row = (
            await conn.execute(
                delete(LEASES)
                .where(LEASES.c.name == _link_name(secret))
                .returning(LEASES.c.holder, LEASES.c.expires_at)
            )
        ).first()
    # An expired link is deleted all the same: it is of no use to anyone.
    if row is None or row.expires_at <= datetime.now(UTC) or not row.holder.startswith("token:"):
        return None
    try:
        return int(row.holder.removeprefix("token:"))
    except ValueError:
        return None


async def account_of_token_id(database: Database, token_id: int) -> AccountRef | None:
    """The account an API token (by id) belongs to, or None when the token is gone."""
    query = (
        select(ACCOUNTS.c.id, ACCOUNTS.c.name)
        .join(TOKENS, TOKENS.c.account_id == ACCOUNTS.c.id)
        .where(TOKENS.c.id == token_id)
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return AccountRef(int(row.id), row.name) if row is not None else None

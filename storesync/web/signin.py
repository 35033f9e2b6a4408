"""Who a visitor is: API tokens typed into the sign-in form, and one-time sign-in links.

A web session is tied to the API token it was opened with (see :mod:`storesync.web.session`)
and has a row in ``web_sessions``, keyed by the SHA-256 of the cookie's nonce. Every request
checks that the row exists and has not expired, and that the token is neither revoked nor
expired: signing out deletes the row (a copied cookie is then worthless), and revoking a
token signs its browser sessions out.

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

from storesync.accounts import ACCOUNTS, SESSIONS, TOKENS, AccountRef, hash_token, token_usable
from storesync.storage.engine import Database
from storesync.storage.models import Lease, table_of
from storesync.web.session import Session

LEASES = table_of(Lease)
LINK_PREFIX = "signin:"
LINK_SECRET_PREFIX = "sst_once_"  # noqa: S105 - a prefix, not a secret
#: How long a one-time sign-in link stays valid.
LINK_SECONDS = 15 * 60


async def account_of_token(database: Database, token: str) -> tuple[AccountRef, int] | None:
    """The account of an API token and the token's id, or None for an unknown, revoked or
    expired token."""
    query = (
        select(ACCOUNTS.c.id, ACCOUNTS.c.name, TOKENS.c.id.label("token_id"))
        .join(TOKENS, TOKENS.c.account_id == ACCOUNTS.c.id)
        .where(TOKENS.c.token_hash == hash_token(token.strip()), token_usable())
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return AccountRef(int(row.id), row.name), int(row.token_id)


def _session_key(session: Session) -> str:
    return hashlib.sha256(session.nonce.encode()).hexdigest()


async def open_session(database: Database, session: Session) -> None:
    """Record the signed-in ``session`` (expired sessions' rows are dropped meanwhile)."""
    assert session.account_id is not None and session.token_id is not None
    now = datetime.now(UTC)
    async with database.transaction() as conn:
        await conn.execute(delete(SESSIONS).where(SESSIONS.c.expires_at < now))
        await conn.execute(
            insert(SESSIONS).values(
                id_hash=_session_key(session),
                account_id=session.account_id,
                token_id=session.token_id,
                created_at=now,
                expires_at=datetime.fromtimestamp(session.expires, UTC),
            )
        )


async def end_session(database: Database, session: Session) -> None:
    """Forget ``session``: its cookie no longer signs anyone in, wherever it was copied."""
    async with database.transaction() as conn:
        await conn.execute(delete(SESSIONS).where(SESSIONS.c.id_hash == _session_key(session)))


async def account_of_session(database: Database, session: Session) -> AccountRef | None:
    """The session's account, while the session is open on the server and its token usable."""
    if session.account_id is None or session.token_id is None:
        return None
    now = datetime.now(UTC)
    query = (
        select(ACCOUNTS.c.id, ACCOUNTS.c.name)
        .join(TOKENS, TOKENS.c.account_id == ACCOUNTS.c.id)
        .join(SESSIONS, SESSIONS.c.token_id == TOKENS.c.id)
        .where(
            SESSIONS.c.id_hash == _session_key(session),
            SESSIONS.c.expires_at > now,
            SESSIONS.c.account_id == session.account_id,
            TOKENS.c.id == session.token_id,
            ACCOUNTS.c.id == session.account_id,
            token_usable(now),
        )
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
    """The account an API token (by id) belongs to, or None when the token is gone, revoked
    or expired."""
    query = (
        select(ACCOUNTS.c.id, ACCOUNTS.c.name)
        .join(TOKENS, TOKENS.c.account_id == ACCOUNTS.c.id)
        .where(TOKENS.c.id == token_id, token_usable())
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return AccountRef(int(row.id), row.name) if row is not None else None

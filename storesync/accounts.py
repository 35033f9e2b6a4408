"""Accounts (tenants) and their API tokens. Tokens are shown once and stored as SHA-256.

A token has a scope (``normal``: acts for its account; ``admin``: also sees operational data
such as the workers' hosts and pids and ``/metrics``), an optional expiry, and can be revoked.
A revoked token's row is kept (the listing says when it was revoked); every lookup checks
``revoked_at`` and ``expires_at``, so a revoked or expired token is refused at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync.errors import InputError, NotFoundError
from storesync.storage.engine import Database
from storesync.storage.models import Account, ApiToken, WebSession, table_of

ACCOUNTS = table_of(Account)
TOKENS = table_of(ApiToken)
SESSIONS = table_of(WebSession)
TOKEN_PREFIX = "sst_"  # noqa: S105 - a prefix, not a secret
DEFAULT_ACCOUNT = "default"

Scope = Literal["normal", "admin"]
SCOPES: tuple[Scope, ...] = ("normal", "admin")
#: The longest expiry a token can be given (ten years).
MAX_EXPIRY_DAYS = 3650


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


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What may be shown about a token: never the token itself, nor its hash."""

    id: int
    account: str
    label: str | None
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def active(self, now: datetime | None = None) -> bool:
        """Neither revoked nor expired."""
        now = now or datetime.now(UTC)
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def to_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id,
            "account": self.account,
            "label": self.label,
            "scope": self.scope,
            "created_at": when(self.created_at),
            "last_used_at": when(self.last_used_at),
            "expires_at": when(self.expires_at),
            "revoked_at": when(self.revoked_at),
            "active": self.active(),
        }


_TOKEN_INFO = (
    TOKENS.c.id,
    ACCOUNTS.c.name.label("account"),
    TOKENS.c.label,
    TOKENS.c.scope,
    TOKENS.c.created_at,
    TOKENS.c.last_used_at,
    TOKENS.c.expires_at,
    TOKENS.c.revoked_at,
)


def _token_info(row: Any) -> TokenInfo:
    return TokenInfo(**{key: row[key] for key in TokenInfo.__slots__})


def token_usable(now: datetime | None = None) -> Any:
    """The SQL condition of a token that may be used now: not revoked, not expired."""
    now = now or datetime.now(UTC)
    return and_(
        TOKENS.c.revoked_at.is_(None),
        (TOKENS.c.expires_at.is_(None)) | (TOKENS.c.expires_at > now),
    )


def _check_label(label: str | None) -> str | None:
    if label is None:
        return None
    label = label.strip()
    if len(label) > 200 or any(ord(c) < 32 for c in label):
        raise InputError("a token label must have at most 200 characters and no control characters")
    return label or None


def _expiry(expires_in_days: int | None, now: datetime) -> datetime | None:
    if expires_in_days is None:
        return None
    if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise InputError(f"a token expiry must be 1 to {MAX_EXPIRY_DAYS} days")
    return now + timedelta(days=expires_in_days)


async def issue_token(
    database: Database,
    account: str,
    label: str | None = None,
    *,
    scope: Scope = "normal",
    expires_in_days: int | None = None,
    max_active: int | None = None,
) -> tuple[TokenInfo, str]:
    """Create a token for ``account`` (created when new): its description and, once, the token.

    ``max_active`` caps the account's usable tokens (an API caller cannot mint them without
    end); the command line, run by the operator, passes None.
    """
    if scope not in SCOPES:
        raise InputError(f"a token scope is one of {', '.join(SCOPES)}, not {scope!r}")
    label = _check_label(label)
    now = datetime.now(UTC)
    expires_at = _expiry(expires_in_days, now)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with database.transaction(immediate=True) as conn:
        ref = await ensure_account(conn, account)
        if max_active is not None:
            active = await conn.scalar(
                select(func.count())
                .select_from(TOKENS)
                .where(TOKENS.c.account_id == ref.id, token_usable(now))
            )
            if int(active or 0) >= max_active:
                raise InputError(
                    f"account {ref.name!r} already has {max_active} active tokens: revoke one "
                    "first (STORESYNC_MAX_TOKENS_PER_ACCOUNT)"
                )
        token_id = await conn.scalar(
            insert(TOKENS)
            .values(
                account_id=ref.id,
                token_hash=hash_token(token),
                label=label,
                scope=scope,
                created_at=now,
                expires_at=expires_at,
            )
            .returning(TOKENS.c.id)
        )
    info = TokenInfo(int(token_id or 0), ref.name, label, scope, now, None, expires_at, None)
    return info, token


async def create_token(
    database: Database,
    account: str,
    label: str | None = None,
    *,
    scope: Scope = "normal",
    expires_in_days: int | None = None,
) -> str:
    """Create an API token for ``account`` (created when new). The token is returned once."""
    _info, token = await issue_token(
        database, account, label, scope=scope, expires_in_days=expires_in_days
    )
    return token


async def list_tokens(
    database: Database, *, account_id: int | None = None, account: str | None = None
) -> list[TokenInfo]:
    """Tokens, oldest first, of one account (by id or name) or of all accounts."""
    query = select(*_TOKEN_INFO).join(ACCOUNTS, ACCOUNTS.c.id == TOKENS.c.account_id)
    if account_id is not None:
        query = query.where(TOKENS.c.account_id == account_id)
    if account is not None:
        query = query.where(ACCOUNTS.c.name == account.strip())
    async with database.read() as conn:
        rows = (await conn.execute(query.order_by(TOKENS.c.id))).mappings().all()
    return [_token_info(row) for row in rows]


async def revoke_token(
    database: Database, token_id: int, *, account_id: int | None = None
) -> TokenInfo:
    """Revoke token ``token_id`` (of ``account_id``, when given) and end its web sessions.

    Revoking a revoked token changes nothing. Another account's token is as absent as one
    that does not exist: :class:`NotFoundError`.
    """
    now = datetime.now(UTC)
    owned = TOKENS.c.id == token_id
    if account_id is not None:
        owned = and_(owned, TOKENS.c.account_id == account_id)
    async with database.transaction() as conn:
        await conn.execute(
            update(TOKENS).where(owned, TOKENS.c.revoked_at.is_(None)).values(revoked_at=now)
        )
        row = (
            (
                await conn.execute(
                    select(*_TOKEN_INFO)
                    .join(ACCOUNTS, ACCOUNTS.c.id == TOKENS.c.account_id)
                    .where(owned)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError(f"token {token_id} does not exist")
        await conn.execute(delete(SESSIONS).where(SESSIONS.c.token_id == token_id))
    return _token_info(row)

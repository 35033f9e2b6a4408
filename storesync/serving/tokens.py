"""Bearer tokens: which account a request acts for, and the store it names, in one query.

A token is looked up by its SHA-256 (see :mod:`storesync.accounts`). Routes about one store
resolve the token and the store together: one SELECT instead of two on the hot path of every
dashboard read, with the same answers (an unknown token is a 401 before anything else; a store
of another account is as absent as one that does not exist). ``last_used_at`` is written at
most once a minute per token, because a write on every request would put SQLite's one write
lock on that hot path.

Nothing about a token is cached: a revoked or expired token is refused by the very next
request. Failed lookups count against the client's address (:mod:`storesync.serving.throttle`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select, update

from storesync.accounts import ACCOUNTS, TOKENS, AccountRef, Scope, hash_token, token_usable
from storesync.serving.throttle import FailureThrottle
from storesync.storage.engine import Database
from storesync.stores import STORES, StoreInfo

#: Seconds between two writes of a token's ``last_used_at``.
TOUCH_INTERVAL = 60.0

_STORE_COLUMNS = (
    STORES.c.id.label("store_id"),
    STORES.c.name.label("store_name"),
    STORES.c.shopify_domain,
    STORES.c.timezone,
    STORES.c.currency,
    STORES.c.refresh_periods,
    (STORES.c.klaviyo_key_encrypted.is_not(None)).label("has_klaviyo"),
    STORES.c.created_at.label("store_created_at"),
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request acts for: the account, and the token (its id and scope) it came with."""

    account: AccountRef
    token_id: int
    scope: Scope

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


class TokenRefused(Exception):
    """The token is unknown, revoked or expired; the message says which (never the token)."""


class TokenAuthority:
    """Resolves bearer tokens to accounts (one per app; holds touch timestamps and the
    failure counts of the throttle)."""

    def __init__(
        self,
        database: Database,
        *,
        throttle: FailureThrottle | None = None,
        touch_interval: float = TOUCH_INTERVAL,
    ) -> None:
        self.database = database
        self.throttle = throttle or FailureThrottle(limit=10, window_seconds=300.0)
        self.touch_interval = touch_interval
        self._touched: dict[int, float] = {}

    async def account(self, token: str) -> AccountRef | None:
        """The token's account, or None when the token is unknown, revoked or expired."""
        try:
            caller, _store = await self.caller_and_store(token, None)
        except TokenRefused:
            return None
        return caller.account

    async def account_and_store(
        self, token: str, store_id: int | None
    ) -> tuple[AccountRef | None, StoreInfo | None]:
        """The token's account (None: unusable token) and, when it owns it, store ``store_id``."""
        try:
            caller, store = await self.caller_and_store(token, store_id)
        except TokenRefused:
            return None, None
        return caller.account, store

    async def caller_and_store(
        self, token: str, store_id: int | None
    ) -> tuple[Caller, StoreInfo | None]:
        """The token's :class:`Caller` and, when its account owns it, store ``store_id``.

        Raises :class:`TokenRefused` for an unknown, revoked or expired token.
        """
        query: Any = select(
            ACCOUNTS.c.id,
            ACCOUNTS.c.name,
            TOKENS.c.id.label("token_id"),
            TOKENS.c.scope,
            TOKENS.c.expires_at,
            TOKENS.c.revoked_at,
        ).join(TOKENS, TOKENS.c.account_id == ACCOUNTS.c.id)
        if store_id is not None:
            query = query.add_columns(*_STORE_COLUMNS).outerjoin(
                STORES, and_(STORES.c.account_id == ACCOUNTS.c.id, STORES.c.id == store_id)
            )
        query = query.where(TOKENS.c.token_hash == hash_token(token))
        async with self.database.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise TokenRefused("unknown API token")
        if row["revoked_at"] is not None:
            raise TokenRefused("this API token was revoked")
        if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
            raise TokenRefused("this API token has expired")
        await self.touch(int(row["token_id"]))
        account = AccountRef(int(row["id"]), row["name"])
        caller = Caller(account, int(row["token_id"]), row["scope"])
        if store_id is None or row["store_id"] is None:
            return caller, None
        return caller, StoreInfo(
            id=int(row["store_id"]),
            account_id=account.id,
            account=account.name,
            name=row["store_name"],
            shopify_domain=row["shopify_domain"],
            timezone=row["timezone"],
            currency=row["currency"],
            refresh_periods=tuple(row["refresh_periods"] or ()),
            has_klaviyo=bool(row["has_klaviyo"]),
            created_at=row["store_created_at"],
        )

    async def usable(self, token_id: int) -> bool:
        """Whether token ``token_id`` may still be used (not revoked, not expired)."""
        async with self.database.read() as conn:
            found = await conn.scalar(
                select(TOKENS.c.id).where(TOKENS.c.id == token_id, token_usable())
            )
        return found is not None

    async def touch(self, token_id: int) -> None:
        """Record that token ``token_id`` was used now (at most once per touch interval)."""
        now = time.monotonic()
        if now - self._touched.get(token_id, float("-inf")) < self.touch_interval:
            return
        self._touched[token_id] = now
        async with self.database.transaction() as conn:
            await conn.execute(
                update(TOKENS).where(TOKENS.c.id == token_id).values(last_used_at=datetime.now(UTC))
            )

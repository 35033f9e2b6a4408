"""Bearer tokens: which account a request acts for, and the store it names, in one query.

A token is looked up by its SHA-256 (see :mod:`storesync.accounts`). Routes about one store
resolve the token and the store together: one SELECT instead of two on the hot path of every
dashboard read, with the same answers (an unknown token is a 401 before anything else; a store
of another account is as absent as one that does not exist). ``last_used_at`` is written at
most once a minute per token, because a write on every request would put SQLite's one write
lock on that hot path.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select, update

from storesync.accounts import ACCOUNTS, TOKENS, AccountRef, hash_token
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


class TokenAuthority:
    """Resolves bearer tokens to accounts (one per app; holds only touch timestamps)."""

    def __init__(self, database: Database, *, touch_interval: float = TOUCH_INTERVAL) -> None:
        self.database = database
        self.touch_interval = touch_interval
        self._touched: dict[int, float] = {}

    async def account(self, token: str) -> AccountRef | None:
        """The token's account, or None when the token is unknown."""
        found, _store = await self.account_and_store(token, None)
        return found

    async def account_and_store(
        self, token: str, store_id: int | None
    ) -> tuple[AccountRef | None, StoreInfo | None]:
        """The token's account (None: unknown token) and, when it owns it, store ``store_id``."""
        query: Any = select(ACCOUNTS.c.id, ACCOUNTS.c.name, TOKENS.c.id.label("token_id")).join(
            TOKENS, TOKENS.c.account_id == ACCOUNTS.c.id
        )
        if store_id is not None:
            query = query.add_columns(*_STORE_COLUMNS).outerjoin(
                STORES, and_(STORES.c.account_id == ACCOUNTS.c.id, STORES.c.id == store_id)
            )
        query = query.where(TOKENS.c.token_hash == hash_token(token))
        async with self.database.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None, None
        await self._touch(int(row["token_id"]))
        account = AccountRef(int(row["id"]), row["name"])
        if store_id is None or row["store_id"] is None:
            return account, None
        return account, StoreInfo(
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

    async def _touch(self, token_id: int) -> None:
        now = time.monotonic()
        if now - self._touched.get(token_id, float("-inf")) < self.touch_interval:
            return
        self._touched[token_id] = now
        async with self.database.transaction() as conn:
            await conn.execute(
                update(TOKENS).where(TOKENS.c.id == token_id).values(last_used_at=datetime.now(UTC))
            )

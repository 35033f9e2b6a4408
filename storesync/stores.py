"""Stores: a Shopify shop plus the Klaviyo account behind it, owned by an account.

Credentials are encrypted with :class:`~storesync.storage.crypto.SecretBox` on the way in and
only decrypted for a connector; :class:`StoreInfo` (what lists and APIs show) never holds them.
Every value is checked by :mod:`storesync.store_rules` before anything is written, whichever
entry point (API, web form, command line) it came from. A shop belongs to one store: a second
store for the same shop domain, in any account, is a :class:`ConflictError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync import store_rules
from storesync.accounts import ACCOUNTS, DEFAULT_ACCOUNT, ensure_account
from storesync.errors import ConflictError, InputError, LimitExceededError, NotFoundError
from storesync.periods import NAMED_PERIODS
from storesync.storage.crypto import SecretBox
from storesync.storage.engine import Database
from storesync.storage.models import Store, table_of
from storesync.storage.types import is_storable_id

STORES = table_of(Store)
STANDARD_PERIODS = ("today", "last_7_days", "last_30_days")


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """A store as shown to users: everything but the credentials."""

    id: int
    account_id: int
    account: str
    name: str
    shopify_domain: str
    timezone: str
    currency: str | None
    refresh_periods: tuple[str, ...]
    has_klaviyo: bool
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "name": self.name,
            "shopify_domain": self.shopify_domain,
            "timezone": self.timezone,
            "currency": self.currency,
            "refresh_periods": list(self.refresh_periods),
            "has_klaviyo": self.has_klaviyo,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class StoreCredentials:
    """Decrypted credentials, for connectors only. ``repr`` hides them."""

    shopify_token: str = field(repr=False)
    klaviyo_key: str | None = field(repr=False)


def normalize_domain(domain: str, *, extra_hosts: Iterable[str] = ()) -> str:
    """``https://Acme.myshopify.com`` → ``acme.myshopify.com`` (see
    :func:`storesync.store_rules.shop_domain`)."""
    return store_rules.shop_domain(domain, extra_hosts=extra_hosts)


def check_periods(periods: list[str]) -> tuple[str, ...]:
    unknown = [p for p in periods if p not in NAMED_PERIODS]
    if unknown:
        raise InputError(
            f"unknown refresh period(s) {', '.join(unknown)}; "
            f"choose from {', '.join(NAMED_PERIODS)}"
        )
    return tuple(dict.fromkeys(periods))


#: Seconds a caller refused by the store limit is told to wait (nothing frees by itself).
STORE_LIMIT_RETRY_SECONDS = 3600.0


async def check_store_room(conn: AsyncConnection, account_id: int, limit: int) -> None:
    """Raise :class:`LimitExceededError` when the account already has ``limit`` stores (0: no
    limit). The account's row is locked first, so concurrent adds count each other's stores."""
    if not limit:
        return
    lock = select(ACCOUNTS.c.id).where(ACCOUNTS.c.id == account_id)
    if conn.dialect.name == "postgresql":
        await conn.execute(lock.with_for_update())
    count = await conn.scalar(
        select(func.count()).select_from(STORES).where(STORES.c.account_id == account_id)
    )
    if int(count or 0) >= limit:
        raise LimitExceededError(
            f"this account already has {limit} stores (the limit, "
            "STORESYNC_MAX_STORES_PER_ACCOUNT); remove one before adding another",
            retry_after=STORE_LIMIT_RETRY_SECONDS,
        )


class StoreDirectory:
    """Adds, finds, updates and removes stores.

    ``extra_hosts`` are the shop hosts ``STORESYNC_SHOPIFY_ALLOWED_HOSTS`` admits besides
    ``name.myshopify.com`` (none by default).
    """

    def __init__(
        self,
        database: Database,
        box: SecretBox,
        *,
        extra_hosts: Iterable[str] = (),
        max_stores_per_account: int = 0,
    ) -> None:
        self.database = database
        self.box = box
        self.extra_hosts = tuple(extra_hosts)
        #: 0: no limit (STORESYNC_MAX_STORES_PER_ACCOUNT).
        self.max_stores_per_account = max_stores_per_account

    async def add(
        self,
        *,
        name: str,
        shopify_domain: str,
        shopify_token: str,
        klaviyo_key: str | None,
        timezone: str,
        account: str = DEFAULT_ACCOUNT,
        currency: str | None = None,
        refresh_periods: list[str] | None = None,
    ) -> StoreInfo:
        """Validate and add a store; the account is created when new.

        :class:`ConflictError` when a store for the same shop exists already (in this account
        or another: one shop, one store).
        """
        name = store_rules.store_name(name)
        shopify_token = store_rules.secret(shopify_token, "Shopify access token")
        klaviyo = store_rules.secret(klaviyo_key, "Klaviyo private key") if klaviyo_key else None
        domain = normalize_domain(shopify_domain, extra_hosts=self.extra_hosts)
        timezone = store_rules.timezone(timezone)
        currency = store_rules.currency(currency) if currency is not None else None
        periods = check_periods(refresh_periods or list(STANDARD_PERIODS))
        now = datetime.now(UTC)
        try:
            async with self.database.transaction(immediate=True) as conn:
                owner = await conn.scalar(
                    select(STORES.c.account_id).where(STORES.c.shopify_domain == domain)
                )
                ref = await ensure_account(conn, account)
                if owner is not None:
                    raise _taken(domain, same_account=owner == ref.id, account=account)
                await check_store_room(conn, ref.id, self.max_stores_per_account)
                store_id = await conn.scalar(
                    insert(STORES)
                    .values(
                        account_id=ref.id,
                        name=name,
                        shopify_domain=domain,
                        shopify_token_encrypted=self.box.encrypt(shopify_token),
                        klaviyo_key_encrypted=self.box.encrypt(klaviyo) if klaviyo else None,
                        timezone=timezone,
                        currency=currency,
                        refresh_periods=list(periods),
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(STORES.c.id)
                )
        except IntegrityError as exc:
            if "shopify_domain" in str(exc.orig):
                # Another request added the same shop between the check and the insert.
                raise _taken(domain, same_account=False, account=account) from None
            # Another request created the same new account at the same moment.
            raise InputError(
                f"account {account!r} was being created at the same moment; try again"
            ) from None
        return await self.get(int(store_id or 0))

    async def get(self, store_id: int, *, account_id: int | None = None) -> StoreInfo:
        """The store, or :class:`NotFoundError` (also when it belongs to another account)."""
        if not is_storable_id(store_id):  # no such row, and the driver would refuse the number
            raise NotFoundError(f"store {store_id} does not exist")
        query = self._select().where(STORES.c.id == store_id)
        if account_id is not None:
            query = query.where(STORES.c.account_id == account_id)
        async with self.database.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFoundError(f"store {store_id} does not exist")
        return _info(row)

    async def list(self, *, account_id: int | None = None) -> list[StoreInfo]:
        query = self._select().order_by(STORES.c.id)
        if account_id is not None:
            query = query.where(STORES.c.account_id == account_id)
        async with self.database.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_info(r) for r in rows]

    async def credentials(self, store_id: int) -> StoreCredentials:
        if not is_storable_id(store_id):
            raise NotFoundError(f"store {store_id} does not exist")
        async with self.database.read() as conn:
            row = (
                await conn.execute(
                    select(STORES.c.shopify_token_encrypted, STORES.c.klaviyo_key_encrypted).where(
                        STORES.c.id == store_id
                    )
                )
            ).first()
        if row is None:
            raise NotFoundError(f"store {store_id} does not exist")
        return StoreCredentials(
            shopify_token=self.box.decrypt(row.shopify_token_encrypted),
            klaviyo_key=self.box.decrypt(row.klaviyo_key_encrypted)
            if row.klaviyo_key_encrypted
            else None,
        )

    async def update(
        self, store_id: int, *, account_id: int | None = None, **changes: Any
    ) -> StoreInfo:
        """Change name, credentials, time zone, currency or refresh periods."""
        await self.get(store_id, account_id=account_id)
        values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
        for key, value in changes.items():
            if value is None:
                continue
            if key == "name":
                values["name"] = store_rules.store_name(str(value))
            elif key == "shopify_token":
                token = store_rules.secret(str(value), "Shopify access token")
                values["shopify_token_encrypted"] = self.box.encrypt(token)
            elif key == "klaviyo_key":
                key_value = store_rules.secret(str(value), "Klaviyo private key")
                values["klaviyo_key_encrypted"] = self.box.encrypt(key_value)
            elif key == "timezone":
                values["timezone"] = store_rules.timezone(str(value))
            elif key == "currency":
                values["currency"] = store_rules.currency(str(value))
            elif key == "refresh_periods":
                values["refresh_periods"] = list(check_periods(list(value)))
            else:
                raise InputError(f"a store has no setting {key!r}")
        async with self.database.transaction() as conn:
            await conn.execute(update(STORES).where(STORES.c.id == store_id).values(values))
        return await self.get(store_id)

    async def remove(self, store_id: int, *, account_id: int | None = None) -> None:
        await self.get(store_id, account_id=account_id)
        async with self.database.transaction() as conn:
            await conn.execute(delete(STORES).where(STORES.c.id == store_id))

    def _select(self) -> Any:
        return select(
            STORES.c.id,
            STORES.c.account_id,
            ACCOUNTS.c.name.label("account"),
            STORES.c.name,
            STORES.c.shopify_domain,
            STORES.c.timezone,
            STORES.c.currency,
            STORES.c.refresh_periods,
            (STORES.c.klaviyo_key_encrypted.is_not(None)).label("has_klaviyo"),
            STORES.c.created_at,
        ).join(ACCOUNTS, ACCOUNTS.c.id == STORES.c.account_id)


def _taken(domain: str, *, same_account: bool, account: str) -> ConflictError:
    if same_account:
        return ConflictError(f"account {account!r} already has a store for {domain}")
    # Which account holds it is that account's business: say only that it is taken.
    return ConflictError(
        f"a store for {domain} already exists in another account; a shop can be added once"
    )


def _info(row: Any) -> StoreInfo:
    return StoreInfo(
        id=int(row["id"]),
        account_id=int(row["account_id"]),
        account=row["account"],
        name=row["name"],
        shopify_domain=row["shopify_domain"],
        timezone=row["timezone"],
        currency=row["currency"],
        refresh_periods=tuple(row["refresh_periods"] or ()),
        has_klaviyo=bool(row["has_klaviyo"]),
        created_at=row["created_at"],
    )

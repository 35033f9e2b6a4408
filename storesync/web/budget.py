"""The Klaviyo report budget left today for a store's Klaviyo account.

The budget is counted per Klaviyo account (``klaviyo_report_budget``), and which account a
private key belongs to is learned on the first sync and kept in ``provider_cache`` under the
key's fingerprint. Before that first sync nothing can have been spent through storesync, so the
whole daily budget is shown.
"""

from __future__ import annotations

import hashlib

from storesync.providers.klaviyo_budget import ReportBudget
from storesync.providers.provider_cache import ProviderCache
from storesync.settings import Settings
from storesync.storage.engine import Database
from storesync.stores import StoreDirectory, StoreInfo


def key_fingerprint(private_key: str) -> str:
    """The fingerprint the Klaviyo connector files a key's account under.

    It must equal ``KlaviyoAPI.fingerprint`` (storesync.providers.klaviyo_api); the browser
    tests check the budget shown drops after a sync, which fails if the two drift apart.
    """
    return "key:" + hashlib.sha256(private_key.encode()).hexdigest()[:16]


async def budget_left(
    database: Database, settings: Settings, stores: StoreDirectory, store: StoreInfo
) -> int | None:
    """Report calls left today for the store's Klaviyo account; None without Klaviyo."""
    if not store.has_klaviyo:
        return None
    credentials = await stores.credentials(store.id)
    if credentials.klaviyo_key is None:
        return None
    cached = await ProviderCache(database).get(
        f"klaviyo:{key_fingerprint(credentials.klaviyo_key)}:account"
    )
    budget = ReportBudget(database, daily_limit=settings.klaviyo_daily_report_budget)
    if not cached or not cached.get("id"):
        return budget.daily_limit
    return await budget.remaining(str(cached["id"]))

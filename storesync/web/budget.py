"""The Klaviyo report budget left today for a store's Klaviyo account.

The budget is counted per Klaviyo account (``klaviyo_report_budget``), and which account a
private key belongs to is learned on the first sync and kept in ``provider_cache`` under the
key's fingerprint. Before that first sync nothing can have been spent through storesync, so the
whole daily budget is shown.
"""

from __future__ import annotations

from storesync.providers.klaviyo_api import account_cache_key, key_fingerprint
from storesync.providers.klaviyo_budget import ReportBudget
from storesync.providers.provider_cache import ProviderCache
from storesync.settings import Settings
from storesync.storage.engine import Database
from storesync.stores import StoreDirectory, StoreInfo


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
        account_cache_key(key_fingerprint(credentials.klaviyo_key))
    )
    budget = ReportBudget(database, daily_limit=settings.klaviyo_daily_report_budget)
    if not cached or not cached.get("id"):
        return budget.daily_limit
    return await budget.remaining(str(cached["id"]))

"""Building the shared services of a process that runs syncs (worker or server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from storesync.metrics import Metrics
from storesync.providers.klaviyo_budget import ReportBudget
from storesync.providers.provider_cache import ProviderCache
from storesync.queue import JobQueue
from storesync.settings import Settings
from storesync.storage.crypto import SecretBox
from storesync.storage.engine import Database
from storesync.stores import StoreDirectory
from storesync.sync.pipeline import SyncServices


def _provider_of(request: httpx.Request) -> str:
    path = request.url.path
    return "shopify" if "/graphql.json" in path or "/bulk" in path else "klaviyo"


@asynccontextmanager
async def sync_services(
    database: Database, settings: Settings, metrics: Metrics | None = None
) -> AsyncIterator[SyncServices]:
    """The services for syncs, with one HTTP client (connection pool) for every provider call."""

    async def count(response: httpx.Response) -> None:
        if metrics is not None:
            provider = _provider_of(response.request)
            metrics.provider_calls.labels(provider, str(response.status_code)).inc()
            if response.status_code == 429:
                metrics.throttles.labels(provider).inc()

    timeout = httpx.Timeout(settings.http_timeout_seconds, connect=10.0)
    async with httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        event_hooks={"response": [count]},
    ) as http:
        yield SyncServices(
            database=database,
            settings=settings,
            queue=JobQueue(database, settings),
            stores=StoreDirectory(database, SecretBox.from_settings(settings)),
            http=http,
            budget=ReportBudget(database, daily_limit=settings.klaviyo_daily_report_budget),
            provider_cache=ProviderCache(database),
        )

"""Fixtures for end-to-end sync tests: a simulator subprocess and stores added by the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from storesync.providers.klaviyo_budget import ReportBudget
from storesync.providers.provider_cache import ProviderCache
from storesync.queue import JobQueue
from storesync.settings import Settings
from storesync.simulator import SimStore, Simulator, SimulatorConfig, WindowLimit
from storesync.storage import connect
from storesync.storage.crypto import SecretBox
from storesync.stores import StoreDirectory
from storesync.sync.pipeline import SyncServices
from tests.cli.helpers import last_line, storesync
from tests.harness import SimulatorProcess, base_env, fast_config, fast_stores, run_simulator


@pytest.fixture
def sim_stores() -> list[SimStore]:
    return fast_stores(3)


@pytest.fixture
def simulator(sim_stores: list[SimStore], tmp_path: Path) -> Iterator[SimulatorProcess]:
    with run_simulator(fast_config(sim_stores), tmp_path) as process:
        yield process


@pytest.fixture
def env(db_url: str, tmp_path: Path, simulator: SimulatorProcess) -> dict[str, str]:
    return base_env(db_url, tmp_path / "data", simulator)


def add_stores(
    env: dict[str, str], simulator: SimulatorProcess, *, via_cli: bool = True
) -> dict[str, int]:
    """Add every simulated store (with ``storesync stores add`` unless ``via_cli`` is False,
    which is faster for tests about something else); shop domain → store id."""
    listed = simulator.get("/_sim/stores")["stores"]
    if not via_cli:
        return asyncio.run(_add_directly(env, listed))
    ids = {}
    for store in listed:
        result = storesync(
            env,
            "stores", "add", "--name", store["name"], "--shopify-domain", store["shop_domain"],
            "--shopify-token", store["shopify_token"],
            "--klaviyo-key", store["klaviyo_private_key"],
            "--timezone", store["timezone"],
        )  # fmt: skip
        ids[store["shop_domain"]] = int(last_line(result))
    return ids


async def _add_directly(env: dict[str, str], listed: list[dict[str, Any]]) -> dict[str, int]:
    settings = Settings(
        database_url=env["STORESYNC_DATABASE_URL"],
        data_dir=Path(env["STORESYNC_DATA_DIR"]),
        secret_key=env["STORESYNC_SECRET_KEY"],  # type: ignore[arg-type]
    )
    database = connect(settings)
    try:
        directory = StoreDirectory(database, SecretBox.from_settings(settings))
        ids = {}
        for store in listed:
            info = await directory.add(
                name=store["name"],
                shopify_domain=store["shop_domain"],
                shopify_token=store["shopify_token"],
                klaviyo_key=store["klaviyo_private_key"],
                timezone=store["timezone"],
            )
            ids[store["shop_domain"]] = info.id
        return ids
    finally:
        await database.dispose()


def in_process_settings(db_url: str, data_dir: Path, **changes: Any) -> Settings:
    """Settings for services talking to an in-process simulator at ``http://sim``, with
    Klaviyo report windows wide enough that this process's limiters, which outlive a test,
    never hold one back."""
    return Settings(
        database_url=db_url,
        data_dir=data_dir,
        secret_key="test-secret-key",  # type: ignore[arg-type]
        shopify_base_url="http://sim/shops/{shop}",
        klaviyo_base_url="http://sim",
        klaviyo_reports_per_second=20,
        klaviyo_reports_per_minute=600,
        **changes,
    )


@contextlib.asynccontextmanager
async def in_process_services(
    settings: Settings, sim_stores: list[SimStore]
) -> AsyncIterator[SyncServices]:
    """Real services (the database, the queue, the stores of ``sim_stores`` added) with the
    simulator mounted in-process over httpx's ASGI transport."""
    config = SimulatorConfig(stores=sim_stores)
    reports = WindowLimit(20, 600, 225)
    simulator = Simulator(
        dataclasses.replace(
            config, klaviyo_limits=dataclasses.replace(config.klaviyo_limits, reports=reports)
        )
    )
    database = connect(settings)
    directory = StoreDirectory(database, SecretBox.from_settings(settings))
    for store in sim_stores:
        await directory.add(
            name=store.name,
            shopify_domain=store.shop_domain,
            shopify_token=store.shopify_token,
            klaviyo_key=store.klaviyo_private_key,
            timezone=store.timezone,
        )
    transport = httpx.ASGITransport(app=simulator.app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            yield SyncServices(
                database=database,
                settings=settings,
                queue=JobQueue(database, settings),
                stores=directory,
                http=http,
                budget=ReportBudget(database, daily_limit=225),
                provider_cache=ProviderCache(database),
            )
    finally:
        await database.dispose()

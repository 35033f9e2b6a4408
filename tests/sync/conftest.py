"""Fixtures for end-to-end sync tests: a simulator subprocess and stores added by the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storesync.settings import Settings
from storesync.simulator import SimStore
from storesync.storage import connect
from storesync.storage.crypto import SecretBox
from storesync.stores import StoreDirectory
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

"""Fixtures for end-to-end sync tests: a simulator subprocess and stores added by the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storesync.simulator import SimStore
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


def add_stores(env: dict[str, str], simulator: SimulatorProcess) -> dict[str, int]:
    """Add every simulated store with ``storesync stores add``; shop domain → store id."""
    ids = {}
    for store in simulator.get("/_sim/stores")["stores"]:
        result = storesync(
            env,
            "stores", "add", "--name", store["name"], "--shopify-domain", store["shop_domain"],
            "--shopify-token", store["shopify_token"],
            "--klaviyo-key", store["klaviyo_private_key"],
            "--timezone", store["timezone"],
        )  # fmt: skip
        ids[store["shop_domain"]] = int(last_line(result))
    return ids

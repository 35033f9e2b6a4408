"""Fixtures of the fault drills: PostgreSQL only, a faulting simulator, the drill timings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from storesync.simulator import SimStore
from tests.drills.support import drill_env, faulty_config
from tests.harness import SimulatorProcess, base_env, fast_stores, run_simulator
from tests.sync.conftest import add_stores


@pytest.fixture
def backend() -> str:
    """Several worker processes on one database: the drills are about PostgreSQL."""
    return "postgresql"


@pytest.fixture
def sim_stores() -> list[SimStore]:
    return fast_stores(10, orders_per_day=4)


@pytest.fixture
def simulator(sim_stores: list[SimStore], tmp_path: Path) -> Iterator[SimulatorProcess]:
    with run_simulator(faulty_config(sim_stores, seed=len(sim_stores)), tmp_path) as process:
        # Generate every store's data now: generated on first use by a crowd of workers,
        # it holds the simulator up for most of a second, past the clients' timeout.
        today = date.today().isoformat()
        for store in sim_stores:
            process.truth(store.shop_domain, today, today)
        yield process


@pytest.fixture
def env(db_url: str, tmp_path: Path, simulator: SimulatorProcess) -> dict[str, str]:
    return drill_env(base_env(db_url, tmp_path / "data", simulator))


@pytest.fixture
def store_ids(env: dict[str, str], simulator: SimulatorProcess) -> dict[str, int]:
    """Every simulated store added to storesync: shop domain → store id."""
    return add_stores(env, simulator, via_cli=False)

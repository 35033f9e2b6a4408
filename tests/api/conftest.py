"""Fixtures of the API tests: one simulator per session, a deployment per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.support import Deployment, Simulator, stop


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator.start(tmp_path_factory.mktemp("simulator") / "simulator.log")
    yield sim
    stop(sim.process)


@pytest.fixture
def deployment(db_url: str, tmp_path: Path, simulator: Simulator) -> Iterator[Deployment]:
    """This test's database and the processes it starts (all stopped afterwards)."""
    simulator.reset()
    deployed = Deployment(db_url, tmp_path, simulator)
    yield deployed
    deployed.stop_all()

"""Fixtures: a small simulator with a fake clock, and clients in-process and over TCP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import date

import httpx
import pytest

from storesync.simulator import (
    KlaviyoLimits,
    SimStore,
    Simulator,
    SimulatorConfig,
    WindowLimit,
    serve_in_thread,
)

from .helpers import FakeClock

HISTORY_END = date(2025, 11, 20)


def small_stores() -> list[SimStore]:
    common = {"history_end": HISTORY_END, "history_days": 120}
    return [
        SimStore("ny-shop.myshopify.com", timezone="America/New_York", currency="USD",
                 orders_per_day=25, seed=11, **common),
        SimStore("lisbon-shop.myshopify.com", timezone="Europe/Lisbon", currency="EUR",
                 orders_per_day=10, seed=12, **common),
        SimStore("revoked-shop.myshopify.com", timezone="America/Sao_Paulo", currency="BRL",
                 orders_per_day=3, seed=13, token_revoked=True, **common),
    ]  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


def roomy_config() -> SimulatorConfig:
    """Limits out of the way; tests about limits set their own."""
    unlimited = KlaviyoLimits(*(WindowLimit() for _ in range(6)))
    return SimulatorConfig(
        stores=small_stores(),
        bucket_size=1_000_000,
        restore_rate=1_000_000,
        bulk_seconds=0.0,
        klaviyo_limits=unlimited,
    )


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return Simulator(roomy_config(), clock=clock)


@pytest.fixture
def ny(sim: Simulator) -> SimStore:
    return sim.store("ny-shop.myshopify.com")


@pytest.fixture
def lisbon(sim: Simulator) -> SimStore:
    return sim.store("lisbon-shop.myshopify.com")


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator") as c:
        yield c


@pytest.fixture
def tcp_url(sim: Simulator) -> Iterator[str]:
    with serve_in_thread(sim) as url:
        yield url

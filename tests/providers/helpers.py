"""Helpers and fixtures for the connector tests: stores, the simulator in-process or on TCP.

The stores' data is fixed (``history_end`` pinned), so the periods below always hold what the
tests rely on: daylight-saving changes in three hemispheres' zones, and orders a second either
side of local midnight (the generator places them on about a third of the days).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from storesync.periods import Period
from storesync.providers.figures import KlaviyoFigures, ShopifyFigures
from storesync.providers.http import RetryPolicy
from storesync.providers.klaviyo import KlaviyoClient
from storesync.providers.klaviyo_budget import ReportBudget
from storesync.providers.klaviyo_pacing import KlaviyoRateLimits, Window
from storesync.providers.provider_cache import ProviderCache
from storesync.providers.shopify import ShopifyClient
from storesync.providers.shopify_pacing import CostBucket
from storesync.settings import Settings
from storesync.simulator import KlaviyoLimits, SimStore, Simulator, SimulatorConfig, WindowLimit
from storesync.storage import Database, connect, migrate

HISTORY_END = date(2025, 12, 31)


def _store(domain: str, tz: str, currency: str, per_day: float, seed: int) -> SimStore:
    return SimStore(
        shop_domain=domain,
        timezone=tz,
        currency=currency,
        orders_per_day=per_day,
        seed=seed,
        history_end=HISTORY_END,
        history_days=400,
    )


STORES = (
    _store("ny-outdoors.myshopify.com", "America/New_York", "USD", 30, 11),
    _store("loja-lisboa.myshopify.com", "Europe/Lisbon", "EUR", 14, 12),
    _store("sydney-surf.myshopify.com", "Australia/Sydney", "AUD", 18, 13),
    _store("kolkata-tea.myshopify.com", "Asia/Kolkata", "GBP", 10, 14),
)
NY, LISBON, SYDNEY, KOLKATA = (s.shop_domain for s in STORES)

#: (shop, period): each crosses a daylight-saving change of its zone, or (Kolkata, +05:30)
#: has bounds at half hours in UTC.
DST_CASES = (
    (NY, Period(date(2025, 3, 1), date(2025, 3, 15))),  # clocks forward on 9 March
    (NY, Period(date(2025, 10, 25), date(2025, 11, 8))),  # back on 2 November
    (LISBON, Period(date(2025, 10, 20), date(2025, 11, 2))),  # back on 26 October
    (SYDNEY, Period(date(2025, 4, 1), date(2025, 4, 12))),  # back on 6 April
    (KOLKATA, Period(date(2025, 6, 1), date(2025, 6, 30))),
)

#: Generous limits so tests never wait for Klaviyo's real per-minute windows; the daily
#: report budget stays at Klaviyo's 225.
FAST_KLAVIYO = KlaviyoLimits(
    reports=WindowLimit(500, 30000, 225),
    metrics=WindowLimit(100, 6000),
    campaigns=WindowLimit(100, 6000),
    flows=WindowLimit(100, 6000),
    accounts=WindowLimit(100, 6000),
    aggregates=WindowLimit(100, 6000),
)
CLIENT_LIMITS = KlaviyoRateLimits(
    reports=Window(500, 30000),
    metrics=Window(100, 6000),
    campaigns=Window(100, 6000),
    flows=Window(100, 6000),
    accounts=Window(100, 6000),
)
#: Patient enough for 20 % faulted answers; short waits so the tests stay fast.
TEST_RETRY = RetryPolicy(attempts=8, base_delay=0.01, max_delay=0.1)

FAULTS_20 = {
    "seed": 7,
    "error_rate": 0.08,
    "throttle_rate": 0.06,
    "timeout_rate": 0.03,
    "drop_rate": 0.03,
    "timeout_seconds": 2.0,
}


def sim_config(**overrides: Any) -> SimulatorConfig:
    """The test stores with a small, fast Shopify bucket and fast Klaviyo limits."""
    values: dict[str, Any] = {
        "stores": list(STORES),
        "bucket_size": 2000.0,
        "restore_rate": 20000.0,
        "klaviyo_limits": FAST_KLAVIYO,
        "bulk_seconds": 0.2,
    }
    values.update(overrides)
    return SimulatorConfig(**values)


def test_settings(tmp_path: Path, base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": f"sqlite:///{tmp_path}/t.db",
        "shopify_base_url": f"{base}/shops/{{shop}}",
        "klaviyo_base_url": base,
        "http_timeout_seconds": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@dataclass
class Rig:
    """A simulator reachable through ``http``, settings pointing at it, and a database."""

    http: httpx.AsyncClient
    settings: Settings
    database: Database
    sim: Simulator | None = None  # in-process only
    base: str = "http://sim"
    #: One bucket estimate per shop, shared by the rig's clients as the process-wide one is in
    #: production, but fresh for every test so tests never inherit another's estimate.
    buckets: dict[str, CostBucket] = field(default_factory=dict)

    def shopify(self, shop: str, *, bucket: CostBucket | None = None, **kw: Any) -> ShopifyClient:
        store = next(s for s in STORES if s.shop_domain == shop)
        return ShopifyClient(
            self.http,
            self.settings,
            shop_domain=shop,
            access_token=store.shopify_token,
            bucket=bucket or self.buckets.setdefault(shop, CostBucket()),
            retry=TEST_RETRY,
            **kw,
        )

    def klaviyo(
        self,
        shop: str,
        *,
        budget: ReportBudget | None = None,
        limits: KlaviyoRateLimits = CLIENT_LIMITS,
        **kw: Any,
    ) -> KlaviyoClient:
        store = next(s for s in STORES if s.shop_domain == shop)
        return KlaviyoClient(
            self.http,
            self.settings,
            private_key=store.klaviyo_private_key,
            budget=budget or ReportBudget(self.database, daily_limit=225),
            cache=ProviderCache(self.database),
            retry=TEST_RETRY,
            limits=limits,
            **kw,
        )


async def migrated(settings: Settings) -> Database:
    database = connect(settings)
    await migrate(database)
    return database


@pytest.fixture(scope="session")
def simulator() -> Simulator:
    """One in-process simulator for the session, so each store's data is generated once."""
    return Simulator(sim_config())


@pytest.fixture
async def rig(simulator: Simulator, tmp_path: Path) -> AsyncIterator[Rig]:
    """The simulator mounted in-process through ``httpx.ASGITransport``, in its initial state."""
    sim = simulator
    sim.configure(sim_config().to_json())
    sim.reset()
    settings = test_settings(tmp_path, "http://sim")
    database = await migrated(settings)
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        yield Rig(http, settings, database, sim)
    await database.dispose()


# --- Over TCP: `python -m storesync.simulator` in a subprocess ----------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def tcp_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The simulator served by its command line on a free port; yields its base URL."""
    config_file = tmp_path_factory.mktemp("sim") / "config.json"
    config_file.write_text(json.dumps(sim_config().to_json()))
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "storesync.simulator",
            "--port",
            str(port),
            "--config",
            str(config_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/_sim/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the simulator did not start: {process.stderr.read()!r}")  # type: ignore[union-attr]
        time.sleep(0.05)
    try:
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
async def tcp_rig(tcp_simulator: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """A rig talking to the subprocess simulator over real TCP (state reset first)."""
    async with httpx.AsyncClient() as http:
        await control(http, tcp_simulator, "POST", "/_sim/reset")
        await control(
            http,
            tcp_simulator,
            "POST",
            "/_sim/config",
            {"faults": {"error_rate": 0, "throttle_rate": 0, "timeout_rate": 0, "drop_rate": 0}},
        )
        settings = test_settings(tmp_path, tcp_simulator)
        database = await migrated(settings)
        yield Rig(http, settings, database, base=tcp_simulator)
        await control(
            http,
            tcp_simulator,
            "POST",
            "/_sim/config",
            {"faults": {"error_rate": 0, "throttle_rate": 0, "timeout_rate": 0, "drop_rate": 0}},
        )
        await database.dispose()


async def control(
    http: httpx.AsyncClient, base: str, method: str, path: str, body: Any = None
) -> Any:
    """Call a ``/_sim`` control route and return its JSON."""
    response = await http.request(method, base + path, json=body, timeout=30)
    response.raise_for_status()
    return response.json()


async def truth(rig: Rig, shop: str, period: Period) -> tuple[ShopifyFigures, KlaviyoFigures]:
    """The oracle's figures, from the simulator object or over its HTTP control route."""
    if rig.sim is not None:
        return (
            await asyncio.to_thread(rig.sim.shopify_truth, shop, period),
            await asyncio.to_thread(rig.sim.klaviyo_truth, shop, period),
        )
    data = await control(
        rig.http, rig.base, "GET", f"/_sim/truth/{shop}?start={period.start}&end={period.end}"
    )
    return ShopifyFigures.from_json(data["shopify"]), KlaviyoFigures.from_json(data["klaviyo"])


async def requests(rig: Rig, **filters: Any) -> list[dict[str, Any]]:
    """The simulator's request log (as JSON records), filtered."""
    if rig.sim is not None:
        return [r.to_json() for r in rig.sim.requests.records(**filters)]
    query = "&".join(
        f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in filters.items()
    )
    data = await control(rig.http, rig.base, "GET", f"/_sim/requests?{query}")
    return list(data["requests"])

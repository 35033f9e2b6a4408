"""Ready-made store sets: the demo's three stores and N generated stores for scale tests."""

from __future__ import annotations

import random

from storesync.simulator.config import SimStore, SimulatorConfig

_ZONES = (
    "America/New_York",
    "Europe/Lisbon",
    "America/Sao_Paulo",
    "Europe/London",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Australia/Sydney",
    "America/Toronto",
    "Asia/Kolkata",
    "UTC",
)
_CURRENCY_OF_ZONE = {
    "America/New_York": "USD",
    "Europe/Lisbon": "EUR",
    "America/Sao_Paulo": "BRL",
    "Europe/London": "GBP",
    "America/Los_Angeles": "USD",
    "Europe/Berlin": "EUR",
    "Australia/Sydney": "AUD",
    "America/Toronto": "CAD",
    "Asia/Kolkata": "USD",
    "UTC": "EUR",
}


def demo_stores() -> list[SimStore]:
    """Three stores of different sizes, currencies and time zones.

    The third store's Shopify token is listed but treated as revoked, so connectors get 401
    for it (the demo shows a failed job with a clear message).
    """
    return [
        SimStore(
            shop_domain="acme-outdoors.myshopify.com",
            name="Acme Outdoors",
            timezone="America/New_York",
            currency="USD",
            orders_per_day=60,
            seed=1,
        ),
        SimStore(
            shop_domain="loja-lisboa.myshopify.com",
            name="Loja Lisboa",
            timezone="Europe/Lisbon",
            currency="EUR",
            orders_per_day=15,
            seed=2,
        ),
        SimStore(
            shop_domain="rio-moda.myshopify.com",
            name="Rio Moda",
            timezone="America/Sao_Paulo",
            currency="BRL",
            orders_per_day=8,
            seed=3,
            token_revoked=True,
        ),
    ]


def demo_config() -> SimulatorConfig:
    """The configuration ``storesync demo`` and ``storesync simulator`` start with.

    Shopify Plus-sized cost buckets (20,000 points, 1,000 a second) keep the demo brisk; the
    default buckets (1,000 points, 50 a second) pace a page of orders every 20 seconds.
    """
    return SimulatorConfig(stores=demo_stores(), bucket_size=20_000.0, restore_rate=1_000.0)


def generate_stores(
    count: int,
    *,
    seed: int = 0,
    orders_per_day: tuple[float, float] = (1.0, 12.0),
    history_days: int = 120,
) -> list[SimStore]:
    """``count`` stores named ``store-0000.myshopify.com`` … with varied zones and currencies.

    Cheap: only the specs are built here; each store's data is generated on first use (about
    10 ms a store with these defaults: small stores and 120 days of history keep a 1,000-store
    run quick; pass larger values for realism).
    """
    rng = random.Random(seed)  # noqa: S311 - simulated data
    stores = []
    for i in range(count):
        zone = _ZONES[i % len(_ZONES)]
        low, high = orders_per_day
        stores.append(
            SimStore(
                shop_domain=f"store-{i:04d}.myshopify.com",
                name=f"Store {i:04d}",
                timezone=zone,
                currency=_CURRENCY_OF_ZONE[zone],
                orders_per_day=round(rng.uniform(low, high), 1),
                seed=seed * 100_003 + i,
                history_days=history_days,
            )
        )
    return stores

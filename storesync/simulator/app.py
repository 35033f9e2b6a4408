"""The simulator: its state (stores, data, limits, bulk operations, the request log) and app.

:class:`Simulator` holds everything; ``Simulator(config).app`` is the ASGI app that serves
Shopify, Klaviyo and the ``/_sim`` control routes. The app wraps a Starlette router to record
each provider request and to turn :class:`~storesync.simulator.faults.DropConnection` into a
closed connection (see :mod:`storesync.simulator.faults`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx
from starlette.routing import Router
from starlette.types import Message, Receive, Scope, Send

from storesync.periods import Period
from storesync.providers.figures import KlaviyoFigures, ShopifyFigures
from storesync.simulator import oracle
from storesync.simulator.admin import admin_routes
from storesync.simulator.config import SimStore, SimulatorConfig
from storesync.simulator.data import StoreData, default_history_end, generate
from storesync.simulator.faults import DropConnection, FaultInjector, is_network
from storesync.simulator.klaviyo import KlaviyoEndpoints
from storesync.simulator.ratelimit import FixedWindows, LeakyBucket
from storesync.simulator.requestlog import RECORD_KEY, RequestLog, RequestRecord
from storesync.simulator.shopify import ShopifyEndpoint
from storesync.simulator.shopify_bulk import BulkOperations
from storesync.simulator.stores import demo_config


class Simulator:
    """A simulated Shopify and Klaviyo for a set of stores.

    ``clock`` (epoch seconds) drives the leaky buckets, Klaviyo's windows and bulk operations;
    tests may pass a fake one. Store data is generated on first use and kept for at most
    ``data_cache_size`` stores (least recently used dropped; regenerated identically later).
    """

    def __init__(
        self, config: SimulatorConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self._config = _pin(config if config is not None else demo_config())
        self.requests = RequestLog(self._config.request_log_size)
        self.faults = FaultInjector(lambda: self._config)
        self.bulk = BulkOperations(lambda: self._config.bulk_seconds, self.faults.bulk_fails)
        self.windows = FixedWindows()
        self._buckets: dict[str, LeakyBucket] = {}
        self._data: OrderedDict[str, StoreData] = OrderedDict()
        self._lock = threading.Lock()
        self._generating: dict[str, threading.Lock] = {}
        self._index()
        self.app = SimulatorApp(self)

    # Configuration -------------------------------------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        return self._config

    @property
    def stores(self) -> list[SimStore]:
        return list(self._config.stores)

    def configure(self, patch: dict[str, Any]) -> SimulatorConfig:
        """Apply a partial configuration (the body of ``POST /_sim/config``)."""
        config = _pin(self._config.patched(patch))
        with self._lock:
            self._config = config
            self._index()
            for domain in list(self._data):
                if self._by_domain.get(domain) is None or self._data[domain].spec != _data_spec(
                    self._by_domain[domain]
                ):
                    del self._data[domain]
        return config

    def reset(self) -> None:
        """Forget buckets, windows, bulk operations and the request log; restart fault draws."""
        with self._lock:
            self._buckets.clear()
        self.windows.reset()
        self.bulk.reset()
        self.requests.clear()
        self.faults.reseed()

    def _index(self) -> None:
        stores = self._config.stores
        self._by_domain = {s.shop_domain: s for s in stores}
        self._by_klaviyo_key = {s.klaviyo_private_key: s for s in stores}

    def find_store(self, shop_domain: str) -> SimStore | None:
        return self._by_domain.get(shop_domain)

    def find_klaviyo(self, private_key: str) -> SimStore | None:
        return self._by_klaviyo_key.get(private_key)

    def store(self, shop_domain: str) -> SimStore:
        """The store with this shop domain (``KeyError`` when there is none)."""
        store = self.find_store(shop_domain)
        if store is None:
            raise KeyError(f"no simulated store {shop_domain!r}")
        return store

    # Data ----------------------------------------------------------------------------------

    def data(self, store: SimStore | str) -> StoreData:
        """The store's generated data (generated now if needed)."""
        spec = self.store(store) if isinstance(store, str) else store
        domain = spec.shop_domain
        with self._lock:
            cached = self._data.get(domain)
            if cached is not None:
                self._data.move_to_end(domain)
                return cached
            gate = self._generating.setdefault(domain, threading.Lock())
        with gate:  # one generation per store at a time; others wait for it
            with self._lock:
                cached = self._data.get(domain)
            if cached is None:
                cached = generate(_data_spec(spec))
                with self._lock:
                    self._data[domain] = cached
                    while len(self._data) > max(1, self._config.data_cache_size):
                        self._data.popitem(last=False)
            return cached

    async def load(self, store: SimStore) -> StoreData:
        """:meth:`data` without blocking the event loop while a store is generated."""
        cached = self._data.get(store.shop_domain)
        if cached is not None:
            return cached
        return await asyncio.to_thread(self.data, store)

    def shopify_truth(self, shop_domain: str, period: Period) -> ShopifyFigures:
        """The oracle's Shopify figures for a store and period."""
        return oracle.shopify_truth(self.data(shop_domain), period)

    def klaviyo_truth(self, shop_domain: str, period: Period) -> KlaviyoFigures:
        """The oracle's Klaviyo figures for a store and period."""
        return oracle.klaviyo_truth(self.data(shop_domain), period)

    # Limits --------------------------------------------------------------------------------

    def bucket(self, store: SimStore) -> LeakyBucket:
        """The store's Shopify cost bucket, sized by the store or the configuration."""
        size = store.bucket_size or self._config.bucket_size
        rate = store.restore_rate or self._config.restore_rate
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(store.shop_domain)
            if bucket is None:
                bucket = self._buckets[store.shop_domain] = LeakyBucket(size, rate, now)
        if (bucket.size, bucket.restore_rate) != (size, rate):
            bucket.reconfigure(size, rate, now)
        return bucket

    def drain_bucket(self, shop_domain: str, points: float | None = None) -> dict[str, Any]:
        """Spend ``points`` (default: all) of a shop's bucket, as another app would."""
        bucket = self.bucket(self.store(shop_domain))
        bucket.drain(bucket.size if points is None else points, self.clock())
        return bucket.status(self.clock())

    def spend_klaviyo(self, account_id: str, group: str, count: int) -> dict[str, int]:
        """Use ``count`` requests of an account's ``group`` windows, as another app would."""
        self._config.klaviyo_limits.group(group)  # AttributeError for an unknown group
        now = self.clock()
        self.windows.spend(account_id, group, count, now)
        return {
            kind: self.windows.used(account_id, group, kind, now)
            for kind in ("burst", "steady", "daily")
        }

    def limits(self) -> dict[str, Any]:
        """Current Shopify bucket levels and Klaviyo window counts."""
        now = self.clock()
        with self._lock:
            buckets = dict(self._buckets)
        return {
            "shopify": {domain: b.status(now) for domain, b in buckets.items()},
            "klaviyo": self.windows.usage(now),
        }


def _data_spec(store: SimStore) -> SimStore:
    """The spec with runtime knobs cleared: the data depends only on the rest."""
    return dataclasses.replace(
        store,
        token_revoked=False,
        shop_state="active",
        scope_denial="http",
        klaviyo_key_revoked=False,
        bucket_size=None,
        restore_rate=None,
    )


def _pin(config: SimulatorConfig) -> SimulatorConfig:
    """Fix every store's ``history_end`` so the data stays put when the date changes."""
    end = default_history_end()
    stores = [
        s if s.history_end is not None else dataclasses.replace(s, history_end=end)
        for s in config.stores
    ]
    return dataclasses.replace(config, stores=stores)


class SimulatorApp:
    """The ASGI app: routes plus request recording and connection drops."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.router = Router(
            routes=[
                *ShopifyEndpoint(simulator).routes(),
                *KlaviyoEndpoints(simulator).routes(),
                *admin_routes(simulator),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return None
        sim = self.simulator
        record = RequestRecord(
            time=sim.clock(),
            provider="",
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
        )
        scope[RECORD_KEY] = record
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        try:
            await self.router(scope, receive, send_and_note)
        except DropConnection:
            record.fault = record.fault or "drop"
            record.status = None
            self._finish(record, started)
            if is_network(scope):
                # uvicorn closes the transport, without a response, when the app returns a value.
                return "connection dropped by the simulator"
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response."
            ) from None
        except httpx.TransportError:
            record.status = None
            self._finish(record, started)
            raise
        self._finish(record, started)
        return None

    def _finish(self, record: RequestRecord, started: float) -> None:
        if record.provider:
            record.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            self.simulator.requests.add(record)


def create_app(config: SimulatorConfig) -> SimulatorApp:
    """The ASGI app of a new :class:`Simulator` (reach the state via ``app.simulator``)."""
    return Simulator(config).app

"""A faithful local stand-in for the Shopify Admin GraphQL and Klaviyo APIs.

No machine here reaches the real providers, so every test, the demo and the benchmarks talk
to this simulator instead. It serves both APIs from one ASGI app, with deterministic store
data generated from seeds and an oracle that knows the true figures of any period::

    from storesync.simulator import Simulator, demo_config

    sim = Simulator(demo_config())
    transport = httpx.ASGITransport(app=sim.app)          # in-process
    # or: with serve_in_thread(sim) as url: ...             # over TCP
    truth = sim.shopify_truth("acme-outdoors.myshopify.com", period)

Connectors reach it with ``STORESYNC_SHOPIFY_BASE_URL=http://HOST:PORT/shops/{shop}`` and
``STORESYNC_KLAVIYO_BASE_URL=http://HOST:PORT``. Modules, by concern: ``config`` and
``stores`` (what is simulated), ``data`` and ``klaviyo_data`` (generation), ``oracle``,
``shopify*`` (GraphQL schema, objects, search, cost, bulk, endpoint), ``klaviyo*``
(endpoints, filters, reports), ``ratelimit``, ``faults``, ``requestlog``, ``admin``
(``/_sim`` routes), ``app`` (the :class:`Simulator`) and ``server``.
"""

from storesync.simulator.app import Simulator, SimulatorApp, create_app
from storesync.simulator.config import (
    FaultConfig,
    KlaviyoLimits,
    LatencyConfig,
    SimStore,
    SimulatorConfig,
    WindowLimit,
)
from storesync.simulator.oracle import klaviyo_truth, shopify_truth
from storesync.simulator.requestlog import RequestLog, RequestRecord
from storesync.simulator.server import serve, serve_in_thread
from storesync.simulator.stores import demo_config, demo_stores, generate_stores

__all__ = [
    "FaultConfig",
    "KlaviyoLimits",
    "LatencyConfig",
    "RequestLog",
    "RequestRecord",
    "SimStore",
    "Simulator",
    "SimulatorApp",
    "SimulatorConfig",
    "WindowLimit",
    "create_app",
    "demo_config",
    "demo_stores",
    "generate_stores",
    "klaviyo_truth",
    "serve",
    "serve_in_thread",
    "shopify_truth",
]

"""Benchmark: how close a Shopify sync runs to the limit its cost budget sets, and its memory.

    .venv/bin/python -m benchmarks.sync [--orders 20000] [--bucket 4000] [--restore 8000]

(run as a module from the repository root: ``benchmarks/`` has a ``queue.py`` that would shadow
the standard library's if the script's own directory came first on ``sys.path``).

What it does, against the simulator served by its command line in a separate process (TCP):

1. A paged sync (``ShopifyClient``, pacing on) of a period holding about ``--orders`` orders,
   with Shopify's bucket of size B points refilling at R points a second. Its wall time is
   printed next to the lower bound the budget implies (below), with their ratio (target at
   most 1.15) and the number of THROTTLED answers the simulator gave (target 0).
2. The same sync by a naive client that never reads ``throttleStatus`` and, when THROTTLED,
   sleeps a fixed second and tries again (the blind backoff users of peer tools complain of).
3. In a separate process, a sync of a period of about ``--memory-orders`` orders (the
   connector picks a bulk operation above ``STORESYNC_SHOPIFY_BULK_THRESHOLD``), whose peak
   resident memory is printed (target under 200 MB).

The lower bound. Shopify lets call i start only when the bucket holds its requested cost r_i,
and keeps its actual cost a_i (the unused part is refunded at once). The bucket starts full
(B) and gains R points a second, so the last call n cannot start before the points spent by
the calls before it plus its own request have flowed in, beyond the initial B:

    T >= (a_1 + ... + a_(n-1) + r_n - B) / R

(with every page full, a_i = r_i: the total requested cost beyond the initial bucket, over the
restore rate). Network and server time add to any real run; the ratio shows how much.

It prints a table and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from benchmarks.harness import free_port
from storesync.periods import Period
from storesync.providers.figures import ShopifyFigures
from storesync.providers.http import RetryPolicy
from storesync.providers.sales import SalesTally, parse_order
from storesync.providers.shopify import ShopifyClient
from storesync.providers.shopify_api import endpoint_url
from storesync.providers.shopify_pacing import CostBucket
from storesync.providers.shopify_queries import ORDERS_PAGE, created_between, orders_page_size
from storesync.settings import Settings
from storesync.simulator import SimStore, SimulatorConfig

SHOP = "bench-store.myshopify.com"
BIG_SHOP = "bench-big.myshopify.com"
TZ = "America/New_York"
PERIOD = Period(date(2025, 6, 1), date(2025, 6, 30))
BIG_PERIOD = Period(date(2025, 3, 1), date(2025, 6, 8))  # 100 days, crossing a DST change
# The generator adds an order at a day's first and last second on about 30 % of days.
MIDNIGHT_ORDERS_PER_DAY = 0.6


@dataclass
class Run:
    """One sync's outcome, from the client's clock and the simulator's request log."""

    seconds: float
    figures: ShopifyFigures
    calls: int
    throttled: int
    bound: float


def store(domain: str, orders: int, period: Period) -> SimStore:
    """A store whose period holds about ``orders`` orders (and little history before it)."""
    per_day = max(1.0, orders / period.days - MIDNIGHT_ORDERS_PER_DAY)
    return SimStore(
        shop_domain=domain,
        timezone=TZ,
        currency="USD",
        orders_per_day=round(per_day, 2),
        seed=20_000 if domain == SHOP else 200_000,
        history_end=period.end,
        history_days=period.days + 1,
    )


def start_simulator(config: SimulatorConfig) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m storesync.simulator`` on a free port; returns the process and base URL."""
    path = Path(tempfile.mkdtemp(prefix="storesync-bench-")) / "config.json"
    path.write_text(json.dumps(config.to_json()))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "storesync.simulator", "--port", str(port), "--config", str(path)],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_sim/health", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the simulator did not start")


def settings_for(base: str) -> Settings:
    return Settings(
        shopify_base_url=f"{base}/shops/{{shop}}",
        klaviyo_base_url=base,
        data_dir=Path(tempfile.gettempdir()),
        http_timeout_seconds=60,
    )


async def sim(http: httpx.AsyncClient, base: str, method: str, path: str) -> Any:
    response = await http.request(method, base + path, timeout=300)
    response.raise_for_status()
    return response.json()


async def truth(http: httpx.AsyncClient, base: str, shop: str, period: Period) -> ShopifyFigures:
    data = await sim(http, base, "GET", f"/_sim/truth/{shop}?start={period.start}&end={period.end}")
    return ShopifyFigures.from_json(data["shopify"])


async def log_summary(
    http: httpx.AsyncClient, base: str, bucket: float, rate: float
) -> tuple[int, int, float]:
    """(calls, THROTTLED answers, lower bound in seconds) from the simulator's request log."""
    records = (await sim(http, base, "GET", "/_sim/requests?provider=shopify"))["requests"]
    answered = [r for r in records if not r["throttled"] and r["actual_cost"] is not None]
    spent_before_last = sum(r["actual_cost"] for r in answered[:-1])
    bound = max(0.0, (spent_before_last + answered[-1]["requested_cost"] - bucket) / rate)
    return len(records), sum(1 for r in records if r["throttled"]), bound


async def paced_sync(base: str, bucket: float, rate: float) -> Run:
    settings = settings_for(base)
    async with httpx.AsyncClient() as http:
        await sim(http, base, "POST", "/_sim/reset")
        shop = next(
            s
            for s in (await sim(http, base, "GET", "/_sim/stores"))["stores"]
            if s["shop_domain"] == SHOP
        )
        client = ShopifyClient(
            http,
            settings,
            shop_domain=SHOP,
            access_token=shop["shopify_token"],
            bucket=CostBucket(),
            retry=RetryPolicy(),
        )
        started = time.perf_counter()
        figures = await client.fetch_figures(PERIOD, ZoneInfo(TZ), mode="pages")
        seconds = time.perf_counter() - started
        calls, throttled, bound = await log_summary(http, base, bucket, rate)
    return Run(seconds, figures, calls, throttled, bound)


async def naive_sync(base: str, bucket: float, rate: float) -> Run:
    """The same pages, without pacing: on THROTTLED, sleep one second and try again."""
    settings = settings_for(base)
    tz = ZoneInfo(TZ)
    start, end = PERIOD.utc_bounds(tz)
    async with httpx.AsyncClient(timeout=60) as http:
        await sim(http, base, "POST", "/_sim/reset")
        shop = next(
            s
            for s in (await sim(http, base, "GET", "/_sim/stores"))["stores"]
            if s["shop_domain"] == SHOP
        )
        headers = {"X-Shopify-Access-Token": shop["shopify_token"]}
        url = endpoint_url(settings, SHOP)
        tally = SalesTally(PERIOD, tz)
        seen: set[str] = set()
        after: str | None = None
        started = time.perf_counter()
        while True:
            variables = {
                "first": orders_page_size(),
                "after": after,
                "query": created_between(start, end),
            }
            response = await http.post(
                url, json={"query": ORDERS_PAGE, "variables": variables}, headers=headers
            )
            body = response.json()
            if response.status_code == 429 or any(
                (e.get("extensions") or {}).get("code") == "THROTTLED"
                for e in body.get("errors") or []
            ):
                await asyncio.sleep(1.0)
                continue
            orders = body["data"]["orders"]
            for edge in orders["edges"]:
                order = parse_order(edge["node"])
                if order.id not in seen and order.counts and start <= order.created_at < end:
                    seen.add(order.id)
                    tally.add(order)
            if not orders["pageInfo"]["hasNextPage"]:
                break
            after = orders["pageInfo"]["endCursor"]
        seconds = time.perf_counter() - started
        calls, throttled, bound = await log_summary(http, base, bucket, rate)
    return Run(seconds, tally.figures(), calls, throttled, bound)


def memory_child(base: str) -> None:
    """Run in a separate process: one sync of the big period; print a JSON line."""

    async def main() -> dict[str, Any]:
        settings = settings_for(base)
        async with httpx.AsyncClient() as http:
            shop = next(
                s
                for s in (await sim(http, base, "GET", "/_sim/stores"))["stores"]
                if s["shop_domain"] == BIG_SHOP
            )
            client = ShopifyClient(
                http,
                settings,
                shop_domain=BIG_SHOP,
                access_token=shop["shopify_token"],
                bucket=CostBucket(),
            )
            started = time.perf_counter()
            figures = await client.fetch_figures(BIG_PERIOD, ZoneInfo(TZ))
            seconds = time.perf_counter() - started
            operations = {
                r["operation"]
                for r in (await sim(http, base, "GET", f"/_sim/requests?account={BIG_SHOP}"))[
                    "requests"
                ]
            }
        return {
            "figures": figures.to_json(),
            "seconds": seconds,
            "bulk": "bulkOperationRunQuery" in operations,
        }

    result = asyncio.run(main())
    # ru_maxrss is in kilobytes on Linux: the process's peak resident set, imports included.
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


async def memory_run(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        expected = await truth(http, base, BIG_SHOP, BIG_PERIOD)  # also generates the data first
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.sync", "--memory-child", base],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["exact"] = ShopifyFigures.from_json(result["figures"]) == expected
    result["orders"] = expected.orders
    return result


def row(*cells: object) -> str:
    widths = (34, 12, 12, 10, 10, 7)
    return "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=False))
    )


async def benchmark(args: argparse.Namespace) -> None:
    config = SimulatorConfig(
        stores=[store(SHOP, args.orders, PERIOD), store(BIG_SHOP, args.memory_orders, BIG_PERIOD)],
        bucket_size=args.bucket,
        restore_rate=args.restore,
        bulk_seconds=1.0,
    )
    process, base = start_simulator(config)
    try:
        async with httpx.AsyncClient() as http:
            expected = await truth(http, base, SHOP, PERIOD)
        paced = await paced_sync(base, args.bucket, args.restore)
        naive = None if args.skip_naive else await naive_sync(base, args.bucket, args.restore)
        memory = None if args.skip_memory else await memory_run(base)
    finally:
        process.terminate()
        process.wait(timeout=10)

    pages = paced.calls
    print(
        f"Shopify sync of {expected.orders:,} orders ({PERIOD}, {TZ}), {pages} pages of "
        f"{orders_page_size()} orders; bucket B={args.bucket:g} points, "
        f"restore R={args.restore:g}/s"
    )
    print(row("client", "wall (s)", "bound (s)", "ratio", "THROTTLED", "exact"))
    for name, run in (
        ("paced (storesync ShopifyClient)", paced),
        ("naive (fixed 1 s sleep)", naive),
    ):
        if run is None:
            continue
        print(
            row(
                name,
                f"{run.seconds:.2f}",
                f"{run.bound:.2f}",
                f"{run.seconds / run.bound:.3f}",
                run.throttled,
                "yes" if run.figures == expected else "NO",
            )
        )
    print(
        "bound = (actual cost of every call but the last + the last call's requested cost - B) / R"
    )
    if memory is not None:
        print(
            f"Memory: sync of {memory['orders']:,} orders ({BIG_PERIOD}) in a separate process, "
            f"{'bulk operation' if memory['bulk'] else 'pages'}: peak RSS "
            f"{memory['peak_rss_mb']:.0f} MB (target < 200), {memory['seconds']:.1f} s, "
            f"exact: {'yes' if memory['exact'] else 'NO'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20_000, help="orders in the paged period")
    parser.add_argument("--bucket", type=float, default=4000.0, help="bucket size B (points)")
    parser.add_argument("--restore", type=float, default=8000.0, help="restore rate R (points/s)")
    parser.add_argument("--memory-orders", type=int, default=200_000)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    asyncio.run(benchmark(args))


if __name__ == "__main__":
    main()

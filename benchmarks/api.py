"""API benchmark: cache-hit dashboard reads over HTTP, against the cost of one bare SELECT.

Run from the repository root (about a minute with the defaults)::

    .venv/bin/python -m benchmarks.api            # or: .venv/bin/python benchmarks/api.py
    .venv/bin/python -m benchmarks.api --help     # duration, clients, which databases

For each database (SQLite, PostgreSQL) it prepares a scratch database with one store, an API
token and a cached, final 30-day period (and the period before it), then measures two servers
in alternating rounds, each a single OS process served by uvicorn with the same settings:

- **api**: ``storesync serve --no-worker``, ``GET /api/stores/{id}/dashboard?start=&end=``
  with a bearer token: FastAPI routing and validation, the token lookup (one SELECT), the store
  check (one SELECT), the cache read (one SELECT for the period and the previous one), the
  dashboard document, response-model validation and JSON.
- **bare**: a tiny Starlette app built here, NOT part of storesync's API: one route that runs
  the same cache read (``storesync.serving.reads.read_periods``, the one SELECT), builds the same
  document and answers it as JSON. No auth, no validation.

``--clients`` (16) concurrent keep-alive connections each send a request as soon as the last
answer arrived, for ``--seconds`` per round after a warm-up, ``--rounds`` rounds per server
alternating between them (so that background load weighs on both alike); a minimal HTTP/1.1
client written here keeps the load generator's own cost low (it shares the machine).
Reported: requests per second (the median round), and the p50 and p99 latency over all
rounds. The ratio bare/api is what framework and auth cost.

The figures are printed as a table; ``benchmarks.run_all`` puts them into docs/benchmarks.md.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: don't let benchmarks/queue.py shadow `queue`
    import pathlib
    import sys

    _here = pathlib.Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.harness import drop, free_port, machine, percentile, recreate
from storesync.accounts import create_token
from storesync.cache import KLAVIYO, SHOPIFY, dashboard_json, write_rows
from storesync.periods import Period
from storesync.providers.figures import DailySales, KlaviyoFigures, MessageStats, ShopifyFigures
from storesync.settings import Settings
from storesync.storage import connect, migrate
from storesync.storage.crypto import SecretBox
from storesync.stores import StoreDirectory

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET_KEY = "benchmark-only-key"
PERIOD = Period(date(2025, 6, 1), date(2025, 6, 30))


# -- the scratch database ---------------------------------------------------------------------


def bench_settings(url: str, data_dir: Path) -> Settings:
    return Settings(database_url=url, data_dir=data_dir, secret_key=SECRET_KEY)


def _shopify(period: Period, orders: int) -> dict[str, Any]:
    daily = tuple(DailySales(d, orders // period.days, Decimal("1234.56")) for d in period.dates())
    return ShopifyFigures(
        currency="USD",
        orders=orders,
        total_sales=Decimal("123456.78"),
        gross_sales=Decimal("130000.00"),
        discounts=Decimal("4321.00"),
        refunds=Decimal("987.65"),
        new_customers=orders // 3,
        returning_customers=orders // 4,
        daily=daily,
    ).to_json()


def _klaviyo() -> dict[str, Any]:
    def stats(kind: str, n: int) -> MessageStats:
        return MessageStats(
            id=f"{kind}{n:04d}", name=f"{kind} {n}", channel="email", recipients=12000,
            delivered=11800, opens_unique=5100, clicks_unique=640, conversions=88,
            conversion_value=Decimal("4410.25"), unsubscribes=12,
        )  # fmt: skip

    return KlaviyoFigures(
        campaigns=tuple(stats("C", n) for n in range(12)),
        flows=tuple(stats("F", n) for n in range(6)),
    ).to_json()


async def prepare(settings: Settings) -> tuple[int, str]:
    """Migrate, add a store and a token, cache its period and the one before; (store, token)."""
    database = connect(settings)
    try:
        await migrate(database)
        store = await StoreDirectory(database, SecretBox.from_settings(settings)).add(
            name="Benchmark store",
            shopify_domain="bench.myshopify.com",
            shopify_token="shpat_benchmark",
            klaviyo_key="pk_benchmark_key",
            timezone="America/New_York",
            account="bench",
        )
        token = await create_token(database, "bench")
        synced = datetime.now(UTC)
        async with database.transaction() as conn:
            for period, orders in ((PERIOD, 2160), (PERIOD.previous(), 1980)):
                await write_rows(
                    conn,
                    database.dialect,
                    store_id=store.id,
                    period=period,
                    payloads={SHOPIFY: _shopify(period, orders), KLAVIYO: _klaviyo()},
                    synced_at=synced,
                    expires=None,  # final: a hit for the whole run
                    job_id=None,
                )
        return store.id, token
    finally:
        await database.dispose()


# -- the bare server (a benchmark-only app, not part of the product) --------------------------


def bare_app(settings: Settings) -> Any:
    """A Starlette app with one route doing the dashboard's one SELECT, nothing else."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from storesync.serving.reads import read_periods

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> Any:
        # The same engine options as the API's (a pre-ping on PostgreSQL): only the route differs.
        postgres = (settings.database_url or "").startswith("postgresql")
        state["database"] = connect(settings, **({"pool_pre_ping": True} if postgres else {}))
        yield
        await state["database"].dispose()

    async def dashboard(request: Request) -> Response:
        store_id = int(request.path_params["store_id"])
        period = Period(
            date.fromisoformat(request.query_params["start"]),
            date.fromisoformat(request.query_params["end"]),
        )
        previous = period.previous()
        cached = await read_periods(state["database"], store_id, [period, previous])
        document = dashboard_json(
            store_id=store_id,
            currency=None,
            current=cached[period],
            previous=cached[previous],
            now=datetime.now(UTC),
            needs_klaviyo=True,
        )
        return Response(json.dumps(document), media_type="application/json")

    routes = [Route("/bare/stores/{store_id}/dashboard", dashboard)]
    return Starlette(routes=routes, lifespan=lifespan)


def serve_bare(url: str, data_dir: str, port: int) -> None:
    """Entry point of the bare server's process (``--serve-bare``)."""
    import uvicorn

    app = bare_app(bench_settings(url, Path(data_dir)))
    uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    ).run()


# -- processes ---------------------------------------------------------------------------------


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_ready(port: int, path: str, headers: dict[str, str], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _ = await fetch_once(port, path, headers)
            return status
        except OSError:
            await asyncio.sleep(0.2)
    raise TimeoutError(f"nothing answered on port {port} within {timeout} s")


# -- the load generator: a minimal keep-alive HTTP/1.1 client ---------------------------------


def request_bytes(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if match is None:
        raise RuntimeError("the benchmark client needs Content-Length answers")
    return status, await reader.readexactly(int(match.group(1)))


async def fetch_once(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_bytes(path, headers))
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


@dataclass
class Figures:
    """Rounds of one server: the median round's rate, latencies pooled over all rounds."""

    rates: list[float]
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return statistics.median(self.rates)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


async def load(
    port: int, path: str, headers: dict[str, str], *, clients: int, warmup: float, seconds: float
) -> list[float]:
    """``clients`` connections in a closed loop; the latencies recorded after the warm-up."""
    payload = request_bytes(path, headers)
    latencies: list[float] = []
    errors: list[int] = []
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup
    end = measure_from + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                sent = loop.time()
                if sent >= end:
                    return
                writer.write(payload)
                status, _body = await read_response(reader)
                done = loop.time()
                if status != 200:
                    errors.append(status)
                elif sent >= measure_from:
                    latencies.append(done - sent)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    if errors:
        raise RuntimeError(f"{len(errors)} non-200 answers, e.g. {errors[0]}")
    return latencies


# -- one database ------------------------------------------------------------------------------


async def check_hit(
    name: str, database: str, port: int, path: str, headers: dict[str, str]
) -> None:
    """Wait for the server, and make sure the read is a fresh cache hit (200, not stale)."""
    status = await wait_ready(port, path, headers)
    if status != 200:
        raise RuntimeError(f"{name} on {database} answered {status}")
    _, body = await fetch_once(port, path, headers)
    if json.loads(body)["meta"]["stale"]:
        raise RuntimeError("the benchmark must read a fresh cache hit")


async def measure(database: str, args: argparse.Namespace, scratch: Path) -> dict[str, Figures]:
    data_dir = scratch / database
    data_dir.mkdir()
    if database == "sqlite":
        url = f"sqlite:///{data_dir / 'storesync.db'}"
    else:
        url = await recreate(args.postgres, "storesync_bench_api")
    try:
        store_id, token = await prepare(bench_settings(url, data_dir))
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORESYNC_")}
        env.update(
            STORESYNC_DATABASE_URL=url,
            STORESYNC_DATA_DIR=str(data_dir),
            STORESYNC_SECRET_KEY=SECRET_KEY,
            # One token asks as fast as the server answers: the per-account budget of requests
            # a minute would measure the 429s. It costs a dictionary lookup per request.
            STORESYNC_API_REQUESTS_PER_MINUTE="0",
        )
        query = f"?start={PERIOD.start}&end={PERIOD.end}"
        targets = {
            "api": (
                ["-m", "storesync", "serve", "--no-worker", "--no-access-log"],
                f"/api/stores/{store_id}/dashboard{query}",
                {"Authorization": f"Bearer {token}"},
            ),
            "bare": (
                ["-m", "benchmarks.api", "--serve-bare", url, "--data-dir", str(data_dir)],
                f"/bare/stores/{store_id}/dashboard{query}",
                {},
            ),
        }
        ports = {name: free_port() for name in targets}
        processes = [
            start(
                [sys.executable, *command, "--port", str(ports[name])],
                env,
                scratch / f"{database}-{name}.log",
            )
            for name, (command, _path, _headers) in targets.items()
        ]
        results = {name: Figures([], []) for name in targets}
        try:
            for name, (_command, path, headers) in targets.items():
                await check_hit(name, database, ports[name], path, headers)
            # Rounds alternate between the two servers, so that whatever else the machine
            # does at the time weighs on both alike.
            for _round in range(args.rounds):
                for name, (_command, path, headers) in targets.items():
                    latencies = await load(
                        ports[name],
                        path,
                        headers,
                        clients=args.clients,
                        warmup=args.warmup,
                        seconds=args.seconds,
                    )
                    results[name].rates.append(len(latencies) / args.seconds)
                    results[name].latencies.extend(latencies)
        finally:
            for process in processes:
                stop(process)
        for name, figures in results.items():
            print(
                f"{database:>10} {name:>4}: {figures.per_second:8,.0f} req/s  "
                f"p50 {figures.p50_ms:6.2f} ms  p99 {figures.p99_ms:6.2f} ms  "
                f"(rounds: {', '.join(f'{r:,.0f}' for r in figures.rates)})",
                flush=True,
            )
        return results
    finally:
        if database == "postgresql" and not args.keep:
            await drop(args.postgres, "storesync_bench_api")


# -- report ------------------------------------------------------------------------------------


def table(results: dict[str, dict[str, Figures]]) -> str:
    rows = [
        "| database | route | req/s | p50 ms | p99 ms | bare/api req/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for database, figures in results.items():
        ratio = figures["bare"].per_second / figures["api"].per_second
        for name, label in (("api", "API dashboard (auth + FastAPI)"), ("bare", "bare SELECT")):
            f = figures[name]
            rows.append(
                f"| {database} | {label} | {f.per_second:,.0f} | {f.p50_ms:.2f} | "
                f"{f.p99_ms:.2f} | {f'{ratio:.2f}×' if name == 'api' else ''} |"
            )
    return "\n".join(rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per server, alternating")
    parser.add_argument("--only", default="sqlite,postgresql", help="databases, comma-separated")
    parser.add_argument("--postgres", default=ADMIN_URL, help="admin URL of the PostgreSQL server")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--serve-bare", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    about = await machine(args.postgres)
    for key, value in about.items():
        print(f"{key:>10}: {value}")
    results: dict[str, dict[str, Figures]] = {}
    with tempfile.TemporaryDirectory(prefix="storesync-bench-api-") as scratch:
        for database in [d.strip() for d in args.only.split(",") if d.strip()]:
            results[database] = await measure(database, args, Path(scratch))
    print()
    print(table(results))


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_bare:
        serve_bare(arguments.serve_bare, arguments.data_dir, arguments.port)
    else:
        asyncio.run(main(arguments))

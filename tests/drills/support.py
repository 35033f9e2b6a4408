"""What the fault drills run: the worker fleet, the API, storms of requests, and reads of
the drill's database.

A drill starts real processes (four ``storesync worker``, ``storesync serve``, the
simulator faulting a fifth of the providers' calls) with timings that make failures show and
heal within seconds, does to them what production does, and hands the records to
:mod:`tests.drills.checks`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from storesync.queue import JobQueue, Reason
from storesync.settings import Settings
from storesync.simulator import FaultConfig, SimStore, SimulatorConfig
from storesync.storage import connect
from storesync.storage.engine import is_unavailable
from tests.cli.helpers import last_line, storesync
from tests.harness import (
    SimulatorProcess,
    fast_config,
    logged_port,
    start_worker,
    stop,
    wait_for,
    wait_until_up,
)

#: The global limit in every drill: below the fleet's slots (4 workers × 3), so claims
#: contend for it.
MAX_CONCURRENT_JOBS = 8
WORKER_CONCURRENCY = 3
#: Short leases: a killed worker's jobs are taken back within seconds, not minutes.
LEASE_SECONDS = 4.0
#: Far below the simulator's injected timeouts and stalls, so those exceed it.
HTTP_TIMEOUT_SECONDS = 1.0
WEBHOOK_SECRET = "shpss_drill_webhook_secret"
FINISHED = ("completed", "failed", "cancelled")

Key = tuple[int, date, date]  # store id, period start, period end


def faulty_config(stores: list[SimStore], *, seed: int) -> SimulatorConfig:
    """The simulator of the drills: fast buckets and windows, and 20 % of calls faulted."""
    faults = FaultConfig(
        seed=seed,
        error_rate=0.10,
        throttle_rate=0.04,
        timeout_rate=0.02,
        drop_rate=0.04,
        timeout_seconds=3 * HTTP_TIMEOUT_SECONDS,
    )
    return dataclasses.replace(fast_config(stores), faults=faults)


def drill_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the timings that make failures show and heal within seconds."""
    return {
        **env,
        "STORESYNC_MAX_CONCURRENT_JOBS": str(MAX_CONCURRENT_JOBS),
        "STORESYNC_MAX_ATTEMPTS": "5",
        "STORESYNC_LEASE_SECONDS": str(LEASE_SECONDS),
        "STORESYNC_RETRY_BASE_SECONDS": "0.2",
        "STORESYNC_RETRY_MAX_SECONDS": "2",
        "STORESYNC_HTTP_TIMEOUT_SECONDS": str(HTTP_TIMEOUT_SECONDS),
        "STORESYNC_JOB_TIMEOUT_SECONDS": "90",
        "STORESYNC_SHUTDOWN_GRACE_SECONDS": "1",
        "STORESYNC_SHOPIFY_API_SECRET": WEBHOOK_SECRET,
    }


# -- processes -------------------------------------------------------------------------------


@dataclasses.dataclass
class Fleet:
    """``storesync worker`` processes, each logging JSON lines to its own file."""

    env: dict[str, str]
    log_dir: Path
    concurrency: int = WORKER_CONCURRENCY
    workers: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)
    logs: list[Path] = dataclasses.field(default_factory=list)
    killed: list[tuple[float, int]] = dataclasses.field(default_factory=list)  # (time, pid)

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start one more worker (no scheduler: the drill decides what is queued)."""
        log = self.log_dir / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        worker = start_worker(
            self.env,
            "--no-scheduler",
            "--log-json",
            "--concurrency",
            str(self.concurrency),
            log=log,
        )
        self.workers.append(worker)
        return worker

    @property
    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def kill_one(self, rng: random.Random) -> int:
        """SIGKILL a random live worker and start its replacement; returns the victim's pid."""
        victim = rng.choice(self.alive)
        self.killed.append((time.time(), victim.pid))
        victim.kill()
        victim.wait()
        self.spawn()
        return victim.pid

    def stop(self) -> list[int]:
        """SIGTERM every live worker once it is up; their exit codes (0: a clean stop)."""
        # A replacement still importing has no signal handler yet: SIGTERM would end it
        # before it could show that it stops cleanly.
        wait_for(self._all_registered, timeout=60, what="every worker to register")
        return self.terminate()

    def terminate(self) -> list[int]:
        """SIGTERM every live worker now, all at once (SIGKILL after 30 s); their exit codes."""
        alive = self.alive
        for worker in alive:  # together: one by one, each would take its grace period
            worker.terminate()
        codes = []
        for worker in alive:
            try:
                codes.append(worker.wait(30))
            except subprocess.TimeoutExpired:
                worker.kill()
                codes.append(worker.wait())
        return codes

    def _all_registered(self) -> bool:
        registered = query(self.env["STORESYNC_DATABASE_URL"], "SELECT pid FROM sync_workers")
        return {w.pid for w in self.alive} <= {r["pid"] for r in registered}


@contextmanager
def fleet(
    env: dict[str, str], log_dir: Path, size: int = 4, concurrency: int = WORKER_CONCURRENCY
) -> Iterator[Fleet]:
    """``size`` workers, stopped (and, failing that, killed) on the way out."""
    running = Fleet(env, log_dir, concurrency)
    try:
        for _ in range(size):
            running.spawn()
        yield running
    finally:
        running.terminate()


@contextmanager
def api_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """``storesync serve --no-worker`` (JSON logs to ``log``); yields its base URL."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "storesync", "serve", "--no-worker", "--no-scheduler",
             "--port", "0", "--log-json"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{logged_port(log, process)}"
        wait_until_up(f"{url}/healthz", process)
        yield url
    finally:
        stop(process, signal.SIGINT)


@dataclasses.dataclass(frozen=True)
class Call:
    """One HTTP request of a storm, and what came of it."""

    method: str
    path: str
    options: dict[str, Any]  # httpx's keyword arguments: params, json, content, headers
    tag: Any = None  # what the drill wants to remember about it
    sent_at: float = 0.0  # epoch seconds, when it left (not when it was created)
    response: httpx.Response | None = None


def storm(url: str, calls: list[Call], *, in_flight: int = 8, token: str = "") -> list[Call]:
    """Send every call, ``in_flight`` at a time; the calls with their answers.

    A 503 (the database is out of connections: other tests share the server) is sent again
    after its Retry-After, as Shopify does with a webhook and a dashboard with a read.
    """

    async def main() -> list[Call]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        slots = asyncio.Semaphore(in_flight)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:

            async def one(call: Call) -> Call:
                for _ in range(5):
                    async with slots:
                        sent_at = time.time()
                        response = await http.request(call.method, call.path, **call.options)
                    if response.status_code != 503:
                        break
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                return dataclasses.replace(call, sent_at=sent_at, response=response)

            return await asyncio.gather(*(one(c) for c in calls))

    return asyncio.run(main())


def api_token(env: dict[str, str]) -> str:
    """A new API token of the default account (``storesync tokens create``)."""
    return last_line(storesync(env, "tokens", "create", "--account", "default"))


# -- the database ----------------------------------------------------------------------------


def query(db_url: str, sql: str) -> list[dict[str, Any]]:
    """Rows of ``sql``, read straight from the drill's database (tried again for a while
    when the server has no connection to spare: other tests share it)."""

    async def main() -> list[dict[str, Any]]:
        database = connect(Settings(database_url=db_url), poolclass=NullPool)
        try:
            for attempt in range(20):
                try:
                    async with database.read() as conn:
                        return [dict(r) for r in (await conn.execute(text(sql))).mappings()]
                except Exception as exc:
                    if not is_unavailable(exc) or attempt == 19:
                        raise
                    await asyncio.sleep(0.5)
            raise AssertionError("unreachable")
        finally:
            await database.dispose()

    return asyncio.run(main())


def enqueue(env: dict[str, str], keys: Iterable[Key]) -> list[int]:
    """Queue a user sync of each key through the queue's API; the job ids."""

    async def main() -> list[int]:
        settings = Settings(database_url=env["STORESYNC_DATABASE_URL"])
        database = connect(settings)
        try:
            queue = JobQueue(database, settings)
            return [
                (await queue.enqueue(store, start, end, reason=Reason.USER)).job.id
                for store, start, end in keys
            ]
        finally:
            await database.dispose()

    return asyncio.run(main())


def jobs(db_url: str) -> list[dict[str, Any]]:
    return query(db_url, "SELECT * FROM sync_queue ORDER BY id")


def all_finished(db_url: str) -> bool:
    """Whether there are jobs and every one has finished."""
    rows = query(db_url, "SELECT status FROM sync_queue")
    return bool(rows) and all(r["status"] in FINISHED for r in rows)


def job_key(row: dict[str, Any]) -> Key:
    return (int(row["store_id"]), row["period_start"], row["period_end"])


def secrets_of(simulator: SimulatorProcess, env: dict[str, str], *tokens: str) -> list[str]:
    """Every credential a log must never show."""
    found = [env["STORESYNC_SECRET_KEY"], env["STORESYNC_SHOPIFY_API_SECRET"], *tokens]
    for store in simulator.config.stores:
        found += [store.shopify_token, store.klaviyo_private_key]
    return found

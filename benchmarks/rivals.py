"""procrastinate and pgqueuer doing the benchmark's no-op work, for comparison with storesync.

Each gets its own scratch database on the same PostgreSQL and is used the way its documentation
shows: procrastinate's ``App.run_worker_async`` and ``Task.defer_async``; pgqueuer's
``QueueManager`` started with ``pgqueuer.run`` and ``Queries.enqueue``. The no-op task carries
the ``time.time()`` at which its enqueue began, so the worker can report the enqueue-to-start
latency. Completion is read from their own tables (we have no other way to see that a job's
final status is committed): procrastinate keeps succeeded jobs, pgqueuer deletes finished jobs
from its queue table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from multiprocessing.synchronize import Event
from typing import Any, TypeAlias

import asyncpg
import pgqueuer
import procrastinate
from pgqueuer.db import AsyncpgDriver, AsyncpgPoolDriver
from pgqueuer.models import Job as PgqJob
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries

from benchmarks.harness import Fleet, fan_out, poll_until, recreate, run_worker, wait_event

Results: TypeAlias = "multiprocessing.Queue[tuple[Any, ...]]"
POLL_SECONDS = 0.01
DONE_TIMEOUT = 600.0


def _quiet() -> None:
    logging.basicConfig(level=logging.WARNING)
    for name in ("procrastinate", "pgqueuer"):
        logging.getLogger(name).setLevel(logging.WARNING)


# -- procrastinate -------------------------------------------------------------------------


def procrastinate_app(
    dsn: str, sink: Results | None = None, *, record: bool = False, pool_size: int = 4
) -> Any:
    """The app with the no-op task; in a worker, ``sink`` receives ``started`` and (when
    ``record``) ``latency`` messages."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=dsn, min_size=1, max_size=max(1, pool_size)
        )
    )

    first = [True]

    @app.task(name="noop")
    async def noop(sent: float) -> None:
        if sink is not None:
            now = time.time()
            if first[0]:
                sink.put(("started", now))
                first[0] = False
            if record:
                sink.put(("latency", now - sent))

    return app


def procrastinate_worker(
    index: int, go: Event, stop: Event, results: Results, dsn: str, concurrency: int, record: bool
) -> None:
    _quiet()

    async def body() -> None:
        app = procrastinate_app(dsn, results, record=record, pool_size=concurrency + 2)
        async with app.open_async():
            results.put(("ready", index))
            await wait_event(go)
            worker = asyncio.create_task(
                app.run_worker_async(
                    concurrency=concurrency,
                    name=f"bench-{index}",
                    install_signal_handlers=False,
                    listen_notify=True,
                )
            )
            await wait_event(stop)
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(worker, 10)

    run_worker(index, results, body())


class Procrastinate:
    """procrastinate on the scratch database ``procrastinate_bench``."""

    name = "procrastinate"
    database = "postgresql"

    def __init__(self, admin_url: str, concurrency: int) -> None:
        self.admin_url = admin_url
        self.concurrency = concurrency
        self.dsn = ""
        self.wake = "LISTEN/NOTIFY"
        self.detail = f"run_worker_async(concurrency={concurrency})"

    async def prepare(self) -> None:
        pass

    async def fresh(self) -> None:
        self.dsn = await recreate(self.admin_url, "procrastinate_bench")
        app = procrastinate_app(self.dsn)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

    def start_fleet(self, workers: int, record: bool) -> Fleet:
        return Fleet.start(procrastinate_worker, workers, self.dsn, self.concurrency, record)

    @asynccontextmanager
    async def enqueuer(self, concurrency: int) -> AsyncIterator[Callable[[int], Awaitable[Any]]]:
        app = procrastinate_app(self.dsn, pool_size=concurrency)
        async with app.open_async():
            task = app.tasks["noop"]

            async def one(_i: int) -> None:
                await task.defer_async(sent=time.time())

            yield one

    async def enqueue_many(self, count: int, concurrency: int) -> None:
        async with self.enqueuer(concurrency) as one:
            await fan_out(count, concurrency, one)

    async def enqueue_bulk(self, count: int, chunk: int) -> None:
        app = procrastinate_app(self.dsn)
        async with app.open_async():
            task = app.tasks["noop"]
            for first in range(0, count, chunk):
                now = time.time()
                await task.batch_defer_async(
                    *({"sent": now} for _ in range(min(chunk, count - first)))
                )

    async def wait_done(self, fleet: Fleet, count: int, enqueued: asyncio.Event) -> float:
        conn = await asyncpg.connect(self.dsn)
        try:

            async def done() -> bool:
                row = await conn.fetchrow(
                    "SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok,"
                    " count(*) FILTER (WHERE status = 'failed') AS failed"
                    " FROM procrastinate_jobs"
                )
                if row["failed"]:
                    raise RuntimeError(f"{row['failed']} procrastinate jobs failed")
                return enqueued.is_set() and int(row["ok"]) >= count

            await poll_until(done, POLL_SECONDS, DONE_TIMEOUT)
            return time.time()
        finally:
            await conn.close()


# -- pgqueuer ------------------------------------------------------------------------------


def pgqueuer_worker(
    index: int, go: Event, stop: Event, results: Results, dsn: str, batch: int, record: bool
) -> None:
    _quiet()

    async def body() -> None:
        conn = await asyncpg.connect(dsn)
        manager = QueueManager(Queries(AsyncpgDriver(conn)))

        first = [True]

        @manager.entrypoint("noop")
        async def noop(job: PgqJob) -> None:
            now = time.time()
            if first[0]:
                results.put(("started", now))
                first[0] = False
            if record and job.payload is not None:
                results.put(("latency", now - float(job.payload.decode())))

        @asynccontextmanager
        async def factory() -> AsyncIterator[QueueManager]:
            yield manager

        results.put(("ready", index))
        await wait_event(go)
        shutdown = asyncio.Event()
        worker = asyncio.create_task(pgqueuer.run(factory, batch_size=batch, shutdown=shutdown))
        await wait_event(stop)
        shutdown.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(worker, 10)
        await conn.close()

    run_worker(index, results, body())


class PgQueuer:
    """pgqueuer on the scratch database ``pgqueuer_bench``."""

    name = "pgqueuer"
    database = "postgresql"

    def __init__(self, admin_url: str, batch: int) -> None:
        self.admin_url = admin_url
        self.batch = batch
        self.dsn = ""
        self.wake = "LISTEN/NOTIFY"
        self.detail = f"pgqueuer.run(batch_size={batch})"

    async def prepare(self) -> None:
        pass

    async def fresh(self) -> None:
        self.dsn = await recreate(self.admin_url, "pgqueuer_bench")
        conn = await asyncpg.connect(self.dsn)
        try:
            await Queries(AsyncpgDriver(conn)).install()
        finally:
            await conn.close()

    def start_fleet(self, workers: int, record: bool) -> Fleet:
        return Fleet.start(pgqueuer_worker, workers, self.dsn, self.batch, record)

    @asynccontextmanager
    async def enqueuer(self, concurrency: int) -> AsyncIterator[Callable[[int], Awaitable[Any]]]:
        pool = await asyncpg.create_pool(self.dsn, min_size=concurrency, max_size=concurrency)
        try:
            queries = Queries(AsyncpgPoolDriver(pool))

            async def one(_i: int) -> None:
                await queries.enqueue("noop", str(time.time()).encode())

            yield one
        finally:
            await pool.close()

    async def enqueue_many(self, count: int, concurrency: int) -> None:
        async with self.enqueuer(concurrency) as one:
            await fan_out(count, concurrency, one)

    async def enqueue_bulk(self, count: int, chunk: int) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            queries = Queries(AsyncpgDriver(conn))
            for first in range(0, count, chunk):
                size = min(chunk, count - first)
                stamp = str(time.time()).encode()
                await queries.enqueue(["noop"] * size, [stamp] * size, [0] * size)
        finally:
            await conn.close()

    async def wait_done(self, fleet: Fleet, count: int, enqueued: asyncio.Event) -> float:
        conn = await asyncpg.connect(self.dsn)
        try:

            async def done() -> bool:
                left = await conn.fetchval("SELECT count(*) FROM pgqueuer")
                return enqueued.is_set() and int(left) == 0

            await poll_until(done, POLL_SECONDS, DONE_TIMEOUT)
            finished = time.time()
            # A failed job is deleted too (on_failure="delete"): make sure none failed.
            failed = await conn.fetchval(
                "SELECT count(*) FROM pgqueuer_log WHERE status IN ('exception', 'failed')"
            )
            if failed:
                raise RuntimeError(f"{failed} pgqueuer jobs failed")
            return finished
        finally:
            await conn.close()

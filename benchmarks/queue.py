"""Queue benchmark: storesync's JobQueue on PostgreSQL and SQLite, procrastinate and pgqueuer.

Run from the repository root (about 4 minutes with the defaults on a quiet 2-core machine;
up to twice that when other work shares it)::

    .venv/bin/python -m benchmarks.queue            # or: .venv/bin/python benchmarks/queue.py
    .venv/bin/python -m benchmarks.queue --help     # sizes, worker counts, which queues

Every queue does the same no-op work, through its public API only, with its workers in separate
OS processes (each its own event loop and connections). For each queue and worker count:

- **enqueue/s**: ``--jobs`` jobs enqueued one call per job by ``--enqueuers`` concurrent callers
  in the parent process. Timed from the first call to the last return. Each queue's bulk
  enqueue (storesync's ``enqueue_many``, the scheduler's) is printed apart: chunks of 500 jobs.
- **drain/s**: the jobs are enqueued first (workers connected but held), then the workers are
  released; timed from the first job's start (a worker's first claim returning, or a rival's
  first task starting) to the last completion committed, so no queue's worker start-up is
  counted. This is claim → complete.
- **end-to-end/s**: workers start idle on an empty queue; the enqueuers then run concurrently
  with them (``--e2e-jobs`` jobs); timed from the first enqueue to the last completion
  committed. This is enqueue → claim → complete on one machine, all sharing its cores.

storesync workers loop ``claim(limit=--batch)`` → ``complete_many`` and sleep on ``Wakeup`` when
nothing is claimable, connected as ``storesync worker`` is (no ping per pooled connection
checkout); the enqueuers connect as the API does (a ping per checkout: three round trips).
``max_concurrent_jobs`` is lifted to 10,000 and the jobs are spread over ``--stores`` stores
(one job per store and day) so the one-job-per-store rule does not serialise them. Latency is
measured with one idle worker: one job enqueued at a time with random pauses, from the start of
the enqueue call to the worker's claim returning (storesync) or the task starting (rivals). On
PostgreSQL every queue wakes its worker with LISTEN/NOTIFY; storesync on SQLite polls every
``poll_interval_seconds`` (default 0.5 s), which is what that figure shows.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: don't let this module shadow the stdlib `queue`
    import pathlib
    import sys

    _here = pathlib.Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import argparse
import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Protocol

from benchmarks.harness import (
    Fleet,
    drop,
    fan_out,
    load,
    machine,
    percentile,
    rate,
    recreate,
    run_worker,
    wait_event,
)
from storesync.periods import Period
from storesync.queue import JobQueue, Reason, Wakeup
from storesync.settings import Settings
from storesync.storage import connect, migrate
from storesync.storage.crypto import SecretBox
from storesync.stores import StoreDirectory

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FIRST_DAY = date(2025, 1, 1)
SETTLE_SECONDS = 0.5  # let idle workers reach their wait before the clock starts
DONE_TIMEOUT = 600.0
PG_PAUSE = (0.005, 0.025)  # seconds between latency samples
SQLITE_PAUSE = (0.05, 0.15)


class System(Protocol):
    """One queue on one database, as the measurements drive it."""

    name: str
    database: str
    wake: str
    detail: str

    async def prepare(self) -> None: ...
    async def fresh(self) -> None: ...
    def start_fleet(self, workers: int, record: bool) -> Fleet: ...
    def enqueuer(self, concurrency: int) -> Any: ...
    async def enqueue_many(self, count: int, concurrency: int) -> None: ...
    async def enqueue_bulk(self, count: int, chunk: int) -> None: ...
    async def wait_done(self, fleet: Fleet, count: int, enqueued: asyncio.Event) -> float: ...


# -- storesync -----------------------------------------------------------------------------


def bench_settings(url: str, data_dir: str) -> Settings:
    return Settings(
        database_url=url,
        data_dir=Path(data_dir),
        secret_key="benchmark-only-key",
        max_concurrent_jobs=10_000,
        # One account queues every job: the per-account cap on users' syncs (a guard for the
        # API; the rivals have none) would refuse them past 500. See docs/benchmarks.md for
        # what the cap costs an enqueue.
        max_queued_jobs_per_account=0,
    )


def storesync_worker(
    index: int,
    go: Event,
    stop: Event,
    results: Any,
    url: str,
    data_dir: str,
    batch: int,
    record: bool,
) -> None:
    """A worker process: claim a batch, complete it, and sleep on the wake-up when idle."""

    async def body() -> None:
        settings = bench_settings(url, data_dir)
        database = connect(settings, ping=False)  # as `storesync worker` connects
        queue = JobQueue(database, settings)
        wakeup = Wakeup(database, settings.poll_interval_seconds)
        await wakeup.start()
        worker_id = f"bench-{index}"
        await queue.claim(worker_id, limit=batch)  # opens a connection; nothing is queued yet
        results.put(("ready", index))
        await wait_event(go)
        watcher = asyncio.create_task(wait_event(stop))
        watcher.add_done_callback(lambda _task: wakeup.set())
        first = True
        calls = empty = 0
        try:
            while not stop.is_set():
                jobs = await queue.claim(worker_id, limit=batch)
                calls += 1
                if not jobs:
                    empty += 1
                    await wakeup.wait()
                    continue
                claimed = time.time()
                if first:
                    results.put(("started", claimed))
                    first = False
                if record:
                    results.put(("claimed", [(job.id, claimed) for job in jobs]))
                done = await queue.complete_many(worker_id, [job.id for job in jobs])
                results.put(("done", len(done), time.time()))
        finally:
            watcher.cancel()
            await wakeup.stop()
            await database.dispose()
            results.put(("claims", calls, empty))

    run_worker(index, results, body())


class Storesync:
    """storesync's JobQueue on PostgreSQL (``storesync_bench``) or a SQLite file."""

    name = "storesync"

    def __init__(self, database: str, admin_url: str, stores: int, batch: int) -> None:
        self.database = database
        self.admin_url = admin_url
        self.stores = stores
        self.batch = batch
        self.workdir = tempfile.mkdtemp(prefix="storesync-bench-")
        self.url = ""
        self.store_ids: list[int] = []
        poll = Settings(secret_key="x").poll_interval_seconds
        self.wake = "LISTEN/NOTIFY" if database == "postgresql" else f"poll every {poll:g} s"
        self.detail = f"claim(limit={batch}) + complete_many"

    @property
    def _template_file(self) -> Path:
        return Path(self.workdir) / "template.db"

    async def prepare(self) -> None:
        """Migrate a template database and add the stores once; ``fresh`` copies it."""
        if self.database == "postgresql":
            url = await recreate(self.admin_url, "storesync_bench_tpl")
        else:
            url = f"sqlite:///{self._template_file}"
        settings = bench_settings(url, self.workdir)
        database = connect(settings)
        try:
            await migrate(database)
            directory = StoreDirectory(database, SecretBox.from_settings(settings))

            async def add(i: int) -> None:
                info = await directory.add(
                    name=f"Bench store {i}",
                    shopify_domain=f"bench-{i}.myshopify.com",
                    shopify_token=f"shpat_bench_{i}",
                    klaviyo_key=None,
                    timezone="UTC",
                    account="bench",
                )
                self.store_ids.append(info.id)

            await add(0)  # creates the account before the concurrent adds
            await fan_out(self.stores - 1, 8, lambda i: add(i + 1))
        finally:
            await database.dispose()

    async def fresh(self) -> None:
        if self.database == "postgresql":
            self.url = await recreate(self.admin_url, "storesync_bench", "storesync_bench_tpl")
            return
        target = Path(self.workdir) / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        shutil.copyfile(self._template_file, target)
        self.url = f"sqlite:///{target}"

    def start_fleet(self, workers: int, record: bool) -> Fleet:
        return Fleet.start(storesync_worker, workers, self.url, self.workdir, self.batch, record)

    @asynccontextmanager
    async def enqueuer(self, concurrency: int) -> AsyncIterator[Callable[[int], Awaitable[int]]]:
        settings = bench_settings(self.url, self.workdir)
        database = connect(settings)
        queue = JobQueue(database, settings)

        async def one(i: int) -> int:
            store_id, day = self._job_key(i)
            enqueued = await queue.enqueue(store_id, day.start, day.end)
            if not enqueued.created:
                raise RuntimeError(f"job {i} was a duplicate: the benchmark's keys overlap")
            return enqueued.job.id

        try:
            yield one
        finally:
            await database.dispose()

    def _job_key(self, i: int) -> tuple[int, Period]:
        """The ``i``-th job's store and day: one job per store and day."""
        day = FIRST_DAY + timedelta(days=i // len(self.store_ids))
        return self.store_ids[i % len(self.store_ids)], Period(day, day)

    async def enqueue_many(self, count: int, concurrency: int) -> None:
        async with self.enqueuer(concurrency) as one:
            await fan_out(count, concurrency, one)

    async def enqueue_bulk(self, count: int, chunk: int) -> None:
        settings = bench_settings(self.url, self.workdir)
        database = connect(settings)
        queue = JobQueue(database, settings)
        try:
            for first in range(0, count, chunk):
                keys = [self._job_key(i) for i in range(first, min(count, first + chunk))]
                created = await queue.enqueue_many(keys, reason=Reason.USER)
                if len(created) != len(keys):
                    raise RuntimeError("a bulk enqueue found duplicates: the keys overlap")
        finally:
            await database.dispose()

    async def wait_done(self, fleet: Fleet, count: int, enqueued: asyncio.Event) -> float:
        done, last = 0, 0.0
        while done < count:
            message = await fleet.next(DONE_TIMEOUT)
            if message[0] == "done":
                done += message[1]
                last = max(last, message[2])
        return last

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


# -- the measurements ----------------------------------------------------------------------


@dataclass
class Throughput:
    system: str
    database: str
    workers: int
    enqueue: float
    drain: float
    end_to_end: float
    claims: str = ""  # storesync only: claim calls (empty ones) in the drain and e2e runs


@dataclass
class Latency:
    system: str
    database: str
    wake: str
    samples: int
    p50_ms: float
    p99_ms: float


async def measure_throughput(
    system: System, workers: int, jobs: int, e2e_jobs: int, enqueuers: int
) -> Throughput:
    # Pre-enqueued: enqueue rate, then claim → complete.
    await system.fresh()
    fleet = system.start_fleet(workers, record=False)
    try:
        await fleet.wait_ready()
        started = time.time()
        await system.enqueue_many(jobs, enqueuers)
        enqueue_rate = rate(jobs, time.time() - started)
        enqueued = asyncio.Event()
        enqueued.set()
        fleet.go.set()
        finished = await system.wait_done(fleet, jobs, enqueued)
        drain = rate(jobs, finished - fleet.earliest_start())
    finally:
        drain_claims = claim_counts(fleet.close())

    # End to end: enqueuers and idle workers running at the same time.
    await system.fresh()
    fleet = system.start_fleet(workers, record=False)
    try:
        await fleet.wait_ready()
        fleet.go.set()
        await asyncio.sleep(SETTLE_SECONDS)
        enqueued = asyncio.Event()

        async def produce() -> None:
            await system.enqueue_many(e2e_jobs, enqueuers)
            enqueued.set()

        started = time.time()
        producer = asyncio.create_task(produce())
        finished = await system.wait_done(fleet, e2e_jobs, enqueued)
        await producer
        end_to_end = rate(e2e_jobs, finished - started)
    finally:
        e2e_claims = claim_counts(fleet.close())
    claims = f"drain {drain_claims}, end-to-end {e2e_claims}" if drain_claims else ""
    return Throughput(
        system.name, system.database, workers, enqueue_rate, drain, end_to_end, claims
    )


def claim_counts(messages: list[tuple[Any, ...]]) -> str:
    """'1,234 (56 empty)' from storesync workers' exit messages; '' for the rivals."""
    counts = [m for m in messages if m[0] == "claims"]
    if not counts:
        return ""
    return f"{sum(m[1] for m in counts):,} ({sum(m[2] for m in counts):,} empty)"


async def measure_latency(system: System, samples: int, pause: tuple[float, float]) -> Latency:
    await system.fresh()
    fleet = system.start_fleet(1, record=True)
    rng = random.Random(7)
    sent: dict[int, float] = {}
    latencies: list[float] = []
    claimed: dict[int, float] = {}
    try:
        await fleet.wait_ready()
        fleet.go.set()
        await asyncio.sleep(SETTLE_SECONDS)
        async with system.enqueuer(1) as one:
            for i in range(samples):
                await asyncio.sleep(rng.uniform(*pause))
                started = time.time()
                key = await one(i)
                if key is not None:
                    sent[key] = started
        while len(latencies) + len(claimed) < samples:
            message = await fleet.next(30)
            if message[0] == "latency":
                latencies.append(message[1])
            elif message[0] == "claimed":
                claimed.update(message[1])
    finally:
        fleet.close()
    latencies += [at - sent[job_id] for job_id, at in claimed.items()]
    return Latency(
        system.name,
        system.database,
        system.wake,
        samples,
        percentile(latencies, 50) * 1000,
        percentile(latencies, 99) * 1000,
    )


async def measure_bulk(system: System, jobs: int, chunk: int) -> float:
    """A queue's bulk enqueue, in chunks of ``chunk`` jobs, for the report's note."""
    await system.fresh()
    started = time.time()
    await system.enqueue_bulk(jobs, chunk)
    return rate(jobs, time.time() - started)


# -- the report ----------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def label(name: str, database: str) -> str:
    return name if name != "storesync" else f"storesync ({database})"


def report(
    args: argparse.Namespace,
    systems: list[Any],
    throughputs: list[Throughput],
    latencies: list[Latency],
    bulk: dict[str, float],
) -> str:
    out = []
    details = {label(s.name, s.database): s.detail for s in systems}
    out.append(
        f"Throughput in jobs/s: {args.jobs} no-op jobs per enqueue and drain run, "
        f"{args.e2e_jobs} per end-to-end run, {args.stores} stores, "
        f"{args.enqueuers} concurrent enqueue callers."
    )
    out.append(
        table(
            ["queue", "worker loop", "workers", "enqueue/s", "drain/s", "end-to-end/s"],
            [
                [
                    label(t.system, t.database),
                    details[label(t.system, t.database)],
                    str(t.workers),
                    f"{t.enqueue:,.0f}",
                    f"{t.drain:,.0f}",
                    f"{t.end_to_end:,.0f}",
                ]
                for t in throughputs
            ],
        )
    )
    claims = [t for t in throughputs if t.claims]
    if claims:
        out.append(
            "\nstoresync claim() calls per run (drain: --jobs jobs; end-to-end: --e2e-jobs):"
        )
        out.extend(
            f"- {label(t.system, t.database)}, {t.workers} worker(s): {t.claims}" for t in claims
        )
    if latencies:
        out.append("\nEnqueue-to-claim (storesync) / enqueue-to-start (rivals), one idle worker:")
        out.append(
            table(
                ["queue", "wake-up", "samples", "p50 ms", "p99 ms"],
                [
                    [
                        label(x.system, x.database),
                        x.wake,
                        str(x.samples),
                        f"{x.p50_ms:.1f}",
                        f"{x.p99_ms:.1f}",
                    ]
                    for x in latencies
                ],
            )
        )
    if bulk:
        out.append(
            "\nBulk enqueue, chunks of 500: "
            + ", ".join(f"{name} {value:,.0f} jobs/s" for name, value in bulk.items())
        )
    out.extend(ratios(throughputs, latencies))
    return "\n".join(out)


def ratios(throughputs: list[Throughput], latencies: list[Latency]) -> list[str]:
    """storesync on PostgreSQL divided by each rival, per worker count and for latency."""
    ours = {t.workers: t for t in throughputs if t.system == "storesync" and t.database != "sqlite"}
    ours_latency = next(
        (x for x in latencies if x.system == "storesync" and x.database == "postgresql"), None
    )
    speed, delay = [], []
    for rival in ("procrastinate", "pgqueuer"):
        for theirs in (t for t in throughputs if t.system == rival and t.workers in ours):
            mine = ours[theirs.workers]
            speed.append(
                [
                    rival,
                    str(theirs.workers),
                    f"{mine.enqueue / theirs.enqueue:.2f}",
                    f"{mine.drain / theirs.drain:.2f}",
                    f"{mine.end_to_end / theirs.end_to_end:.2f}",
                ]
            )
        their_latency = next((x for x in latencies if x.system == rival), None)
        if ours_latency and their_latency:
            delay.append(
                [
                    rival,
                    f"{ours_latency.p50_ms / their_latency.p50_ms:.2f}",
                    f"{ours_latency.p99_ms / their_latency.p99_ms:.2f}",
                ]
            )
    out = []
    if speed:
        out.append("\nThroughput, storesync (PostgreSQL) ÷ rival (above 1: storesync is faster):")
        out.append(table(["rival", "workers", "enqueue", "drain", "end-to-end"], speed))
    if delay:
        out.append("\nLatency, storesync (PostgreSQL) ÷ rival (below 1: storesync is quicker):")
        out.append(table(["rival", "p50", "p99"], delay))
    return out


# -- main ----------------------------------------------------------------------------------

ALL = ("storesync-postgresql", "storesync-sqlite", "procrastinate", "pgqueuer")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per enqueue and drain run")
    parser.add_argument("--e2e-jobs", type=int, default=1000, help="jobs per end-to-end run")
    parser.add_argument("--stores", type=int, default=2000, help="stores the jobs are spread over")
    parser.add_argument("--workers", default="1,4", help="worker process counts, comma-separated")
    parser.add_argument("--batch", type=int, default=50, help="storesync claim(limit=…)")
    parser.add_argument("--enqueuers", type=int, default=4, help="concurrent enqueue callers")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--sqlite-latency-samples", type=int, default=60)
    parser.add_argument(
        "--procrastinate-concurrency", type=int, default=1, help="its worker's default"
    )
    parser.add_argument("--pgqueuer-batch", type=int, default=10, help="its pgqueuer.run default")
    parser.add_argument("--postgres", default=ADMIN_URL, help="admin URL of the PostgreSQL server")
    parser.add_argument("--only", default=",".join(ALL), help=f"subset of {', '.join(ALL)}")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    return parser.parse_args()


def build_systems(args: argparse.Namespace) -> list[Any]:
    from benchmarks.rivals import PgQueuer, Procrastinate

    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = set(wanted) - set(ALL)
    if unknown:
        raise SystemExit(f"unknown --only {', '.join(sorted(unknown))}; choose from {ALL}")
    systems: list[Any] = []
    for name in wanted:
        if name.startswith("storesync-"):
            database = name.removeprefix("storesync-")
            systems.append(Storesync(database, args.postgres, args.stores, args.batch))
        elif name == "procrastinate":
            systems.append(Procrastinate(args.postgres, args.procrastinate_concurrency))
        else:
            systems.append(PgQueuer(args.postgres, args.pgqueuer_batch))
    return systems


async def main() -> None:
    args = parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    began = time.time()
    about = await machine(args.postgres)
    for key, value in about.items():
        print(f"{key:>10}: {value}")
    print(f"   command: python -m benchmarks.queue {' '.join(sys.argv[1:])}\n")
    throughputs: list[Throughput] = []
    latencies: list[Latency] = []
    bulk: dict[str, float] = {}
    systems = build_systems(args)  # storesync's make scratch directories: clean up below
    try:
        for system in systems:
            await system.prepare()
        # Interleaved, so that a change in the machine's load hits every queue alike.
        for workers in worker_counts:
            for system in systems:
                result = await measure_throughput(
                    system, workers, args.jobs, args.e2e_jobs, args.enqueuers
                )
                throughputs.append(result)
                print(
                    f"{label(system.name, system.database)}, {workers} worker(s): "
                    f"enqueue {result.enqueue:,.0f}/s, drain {result.drain:,.0f}/s, "
                    f"end-to-end {result.end_to_end:,.0f}/s"
                    + (f"; claim calls: {result.claims}" if result.claims else ""),
                    flush=True,
                )
        for system in systems:
            sqlite = system.database == "sqlite"
            samples = args.sqlite_latency_samples if sqlite else args.latency_samples
            latency = await measure_latency(system, samples, SQLITE_PAUSE if sqlite else PG_PAUSE)
            latencies.append(latency)
            print(
                f"{label(system.name, system.database)}, latency: "
                f"p50 {latency.p50_ms:.1f} ms, p99 {latency.p99_ms:.1f} ms",
                flush=True,
            )
        for system in systems:
            bulk[label(system.name, system.database)] = await measure_bulk(system, args.jobs, 500)
    finally:
        for system in systems:
            if hasattr(system, "cleanup"):
                system.cleanup()
        if not args.keep:
            with contextlib.suppress(Exception):
                await drop(
                    args.postgres,
                    "storesync_bench",
                    "storesync_bench_tpl",
                    "procrastinate_bench",
                    "pgqueuer_bench",
                )
    print()
    print(report(args, systems, throughputs, latencies, bulk))
    print(f"\n(total {time.time() - began:.0f} s; load average at the end: {load()})")


if __name__ == "__main__":
    asyncio.run(main())

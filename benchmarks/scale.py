"""Benchmark: 1,000 stores refreshed by several workers, with users' requests on top.

Run from the repository root (8 minutes with the defaults on a quiet 2-core machine, about
1.5× the lower bound the providers' budgets and the concurrency limit set; longer when other
work shares the machine and the CPU sets the pace). Fewer stores take less, but never much
under five minutes: one store's syncs run one at a time, and its Klaviyo account allows one
sync a minute::

    .venv/bin/python -m benchmarks.scale                 # 1,000 stores
    .venv/bin/python -m benchmarks.scale --stores 100 --users 20
    .venv/bin/python -m benchmarks.scale --help

Everything is a real process:

- the simulator (``storesync simulator``) serving ``--stores`` generated stores, with the
  providers' real default limits, per shop and per Klaviyo account: Shopify's bucket of
  1,000 cost points refilling at 50 a second, and Klaviyo's report calls at 1 a second,
  2 a minute and 225 a day;
- a fresh PostgreSQL database;
- ``--workers`` ``storesync worker`` processes, their built-in scheduler queuing the refresh
  of every store's standard periods (today, last 7 days, last 30 days), under a global
  ``STORESYNC_MAX_CONCURRENT_JOBS`` of ``--concurrency``;
- one ``storesync serve --no-worker`` process, through which ``--users`` users ask for other
  periods (``POST /api/stores/{id}/sync``, priority user) at random moments during
  ``--user-window`` seconds, from when the scheduler has queued its refreshes.

Why the concurrency limit is large: each sync paces itself within its store's budgets and
holds its slot while it waits for Shopify's bucket, which at 50 points a second lets a shop
page through about 4.5 orders a second. A store's refresh therefore takes tens of seconds
whatever the machine, and how many stores are refreshed at once is what the limit sets
(Little's law). The default of 3 would take hours for 1,000 stores.

What it prints, from the job event log (``sync_job_events``, replayed in the order the
database wrote it, see ``storesync.audit``) and the simulator's request log (see
``storesync.simulator.audit``):

- the refresh time: from the scheduler's first enqueue to the last scheduled job's completion;
- its lower bound, the largest of three, users' requests left out: (a) Klaviyo: a store's
  scheduled syncs make 2 report calls each, which at 2 a minute need that many fixed minute
  windows; (b) Shopify: the slowest store's calls, as made, need a least time under its
  bucket; (c) the concurrency limit: a sync holds its slot at least as long as its own
  Shopify calls need from a full bucket, and the slots can do the sum of that no faster
  than in sum ÷ limit seconds;
- the waits from queued to first claimed by reason (p50, p95, max), users' requests split by
  whether their store was busy when they came (one job per store: they wait for it), and
  the longest wait of any store;
- the order of service: how many queued scheduled jobs each user's request started ahead of,
  and every claim that took a job while one with a higher effective priority was due, its
  store free (there must be none);
- the limits: at most ``--concurrency`` jobs processing and never two of one store, at every
  claim; no call the providers accepted beyond a limit, and the calls they refused;
- the CPU time the simulator, the workers and the API spent: on a small machine that, more
  than the providers' budgets, is what the run waits for.

It exits with status 1 when a limit broke or a claim passed over a better job.

**Noisy neighbour** (``--noisy-neighbour SYNCS``): the stores are dealt to ``--accounts``
accounts; the users ask for the stores of accounts 1 and up. The scenario runs three times on
fresh databases: quiet; with account 0 queuing SYNCS syncs of distinct days through the API (as
fast as it answers, 16 at a time) while the users ask; and that flood again with
``STORESYNC_ACCOUNT_FAIRNESS_POINTS=0``; ``--running-cap JOBS`` adds a fourth, flooded with
``STORESYNC_MAX_RUNNING_JOBS_PER_ACCOUNT=JOBS`` (slots kept for the other accounts). It prints
the other accounts' waits in each run and exits with status 1 unless their p95 with the flood
(in the capped run when there is one) stays within 2× of the quiet run's (and the limits held,
and claims took the best job within each account)::

    .venv/bin/python -m benchmarks.scale --stores 40 --accounts 4 --workers 2 \\
        --concurrency 8 --users 40 --user-window 30 --noisy-neighbour 400 --running-cap 6 \\
        --wide-limits --latency-ms 80
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select

from benchmarks.harness import drop, free_port, load, machine, recreate
from storesync.accounts import create_token
from storesync.audit import (
    JobTrace,
    LimitReport,
    PassedOver,
    Summary,
    Trace,
    longest_wait_per_store,
    overtaken,
    passed_over,
    queued_while_store_busy,
    read_trace,
    replay_limits,
    wait_summaries,
)
from storesync.periods import Period
from storesync.settings import Settings
from storesync.simulator import (
    LatencyConfig,
    RequestRecord,
    SimStore,
    SimulatorConfig,
    WindowLimit,
    generate_stores,
)
from storesync.simulator.audit import (
    LimitAudit,
    audit_limits,
    records_of,
    shopify_seconds,
    shopify_seconds_per_sync,
    window_seconds,
)
from storesync.storage import Database, connect, migrate
from storesync.storage.crypto import SecretBox
from storesync.storage.engine import is_unavailable
from storesync.storage.models import SyncJob, table_of
from storesync.stores import StoreDirectory

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCRATCH_DATABASE = "storesync_bench_scale"
SECRET_KEY = "benchmark-only-key"
JOBS = table_of(SyncJob)
FINISHED = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Scenario:
    """What runs: how many stores, workers and slots, and when users ask for what."""

    stores: int = 1000
    workers: int = 3
    max_concurrent_jobs: int = 200
    #: Seconds after ``users_after`` scheduled jobs are queued at which each user asks.
    user_times: tuple[float, ...] = ()
    #: Scheduled jobs queued before the users' clock starts (None: all of them).
    users_after: int | None = None
    priority_aging_seconds: float = 60.0
    #: False: the providers' real limits. True: wide ones (tests that wait on nothing else).
    wide_limits: bool = False
    #: How long a job must have been due, its store free, for a claim passing it over to
    #: count. The log's clocks are read before the statements commit; on a loaded machine a
    #: commit can come seconds later, and a claim does not see what is not committed yet.
    order_slack: float = 5.0
    #: Added to every provider answer: a test's syncs then take a known least time.
    latency_ms: float = 0.0
    seed: int = 0
    timeout: float = 1200.0
    #: Accounts the stores are dealt to (store ``i`` to account ``i % accounts``). With more
    #: than one, account 0 is the noisy neighbour and the users ask for the others' stores.
    accounts: int = 1
    #: Users' syncs of distinct days that account 0 queues through the API, as fast as it can,
    #: when the other users start (0: a quiet run).
    flood: int = 0
    #: ``STORESYNC_ACCOUNT_FAIRNESS_POINTS`` (None: the default).
    fairness_points: float | None = None
    #: ``STORESYNC_MAX_RUNNING_JOBS_PER_ACCOUNT`` (None: the default, no cap).
    running_cap: int | None = None

    @property
    def scheduled_jobs(self) -> int:
        return 3 * self.stores  # today, last 7 days, last 30 days

    def account(self, index: int) -> str:
        """The account of the ``index``-th store."""
        return "default" if self.accounts == 1 else f"account-{index % self.accounts}"


def spread(users: int, window: float, seed: int = 0) -> tuple[float, ...]:
    """``users`` arrival times at random over ``window`` seconds, sorted."""
    rng = random.Random(seed)
    return tuple(sorted(rng.uniform(0, window) for _ in range(users)))


@dataclass
class Outcome:
    """Everything a run left behind, analysed."""

    scenario: Scenario
    config: SimulatorConfig
    trace: Trace
    limits: LimitReport
    providers: LimitAudit
    passed: list[PassedOver]  # due for ``order_slack`` seconds or more: must be none
    near: list[PassedOver]  # due for less: the log cannot tell them from commit lag
    started_ahead: dict[int, int]  # user job id → queued scheduled jobs it started ahead of
    waits: dict[str, Summary]  # by reason; users split by whether their store was busy
    longest_store_wait: tuple[int, float]
    refresh_seconds: float  # scheduler's first enqueue → last scheduled completion
    all_seconds: float  # the same → last completion of any job
    bound: Bound
    statuses: Counter[str]
    user_jobs: list[int] = field(default_factory=list)
    flood_jobs: list[int] = field(default_factory=list)
    cpu_seconds: float = float("nan")  # of the simulator, the workers and the API together

    @property
    def ok(self) -> bool:
        return self.limits.held and self.providers.held and not self.passed


@dataclass(frozen=True)
class Bound:
    """The refresh's lower bound: the larger of the slowest store's and the slots'."""

    klaviyo: float  # a store's scheduled syncs' report calls in Klaviyo's fixed windows
    klaviyo_calls: int  # how many calls that is (the store with the most syncs)
    shopify: float  # the store whose scheduled Shopify calls need the longest
    shopify_store: str
    slot_seconds: float  # Σ over scheduled syncs of their least Shopify time
    slots: int

    @property
    def by_slots(self) -> float:
        return self.slot_seconds / self.slots

    @property
    def seconds(self) -> float:
        return max(self.klaviyo, self.shopify, self.by_slots)


# -- processes -------------------------------------------------------------------------------


def simulator_config(scenario: Scenario) -> SimulatorConfig:
    config = SimulatorConfig(
        stores=generate_stores(scenario.stores, seed=scenario.seed),
        request_log_size=2_000_000,
        # Every store's data stays generated (about 1 MB each): with the default of 64, a
        # thousand stores in flight would be generated again at nearly every call.
        data_cache_size=scenario.stores,
    )
    config = dataclasses.replace(config, latency=LatencyConfig(fixed_ms=scenario.latency_ms))
    if not scenario.wide_limits:
        return config  # the defaults are the providers' real limits
    stores = [
        dataclasses.replace(s, bucket_size=20_000.0, restore_rate=10_000.0) for s in config.stores
    ]
    limits = dataclasses.replace(config.klaviyo_limits, reports=WindowLimit(20, 600, 225))
    return dataclasses.replace(config, stores=stores, klaviyo_limits=limits)


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """A list to start processes into; each is stopped (SIGTERM, then SIGKILL) on the way out.

    When the run failed, workers get a second SIGTERM: they hand their jobs back at once
    instead of letting them finish.
    """
    started: list[subprocess.Popen[bytes]] = []
    failed = True
    try:
        yield started
        failed = False
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                if failed:
                    time.sleep(0.2)
                    process.send_signal(signal.SIGTERM)
        for process in reversed(started):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def launch(
    started: list[subprocess.Popen[bytes]], args: Sequence[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start ``storesync ARGS`` with its output in ``log``, and add it to ``started``."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "storesync", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    started.append(process)
    return process


async def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url, timeout=2)).status_code == 200:
                    return
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer (exit code {process.poll()})")
            await asyncio.sleep(0.2)


def storesync_env(scenario: Scenario, database_url: str, workdir: Path, sim: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORESYNC_")}
    env.update(
        STORESYNC_DATABASE_URL=database_url,
        STORESYNC_DATA_DIR=str(workdir / "data"),
        STORESYNC_SECRET_KEY=SECRET_KEY,
        STORESYNC_SHOPIFY_BASE_URL=f"{sim}/shops/{{shop}}",
        STORESYNC_KLAVIYO_BASE_URL=sim,
        STORESYNC_MAX_CONCURRENT_JOBS=str(scenario.max_concurrent_jobs),
        STORESYNC_PRIORITY_AGING_SECONDS=str(scenario.priority_aging_seconds),
        # An hour, the deployment guide's example: a long run must not see its first
        # refreshes expire and the scheduler start a second round.
        STORESYNC_CACHE_TTL_SECONDS="3600",
    )
    if scenario.wide_limits:
        env.update(
            STORESYNC_KLAVIYO_REPORTS_PER_SECOND="20", STORESYNC_KLAVIYO_REPORTS_PER_MINUTE="600"
        )
    if scenario.fairness_points is not None:
        env.update(STORESYNC_ACCOUNT_FAIRNESS_POINTS=str(scenario.fairness_points))
    if scenario.running_cap is not None:
        env.update(STORESYNC_MAX_RUNNING_JOBS_PER_ACCOUNT=str(scenario.running_cap))
    return env


# -- the run ---------------------------------------------------------------------------------


async def add_stores(
    database: Database, settings: Settings, config: SimulatorConfig, scenario: Scenario
) -> list[int]:
    directory = StoreDirectory(database, SecretBox.from_settings(settings))
    ids = []
    for index, store in enumerate(config.stores):
        info = await directory.add(
            name=store.name,
            shopify_domain=store.shop_domain,
            shopify_token=store.shopify_token,
            klaviyo_key=store.klaviyo_private_key,
            timezone=store.timezone,
            currency=store.currency,
            account=scenario.account(index),
        )
        ids.append(info.id)
    return ids


async def count_jobs(database: Database) -> Counter[str]:
    """Jobs by reason and by status (``schedule``, ``queued``, …)."""
    async with database.read() as conn:
        by_reason = await conn.execute(select(JOBS.c.reason, func.count()).group_by(JOBS.c.reason))
        by_status = await conn.execute(select(JOBS.c.status, func.count()).group_by(JOBS.c.status))
        return Counter({str(k): int(n) for k, n in [*by_reason, *by_status]})


async def wait_until(
    database: Database, done: Any, deadline: float, what: str, every: float = 1.0
) -> Counter[str]:
    """Poll the job counts until ``done(counts)``; returns them. A database that does not
    answer for a moment (the machine may be shared with tests that restart it) is waited for.
    """
    counts: Counter[str] = Counter()
    while True:
        try:
            counts = await count_jobs(database)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
        else:
            if done(counts):
                return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}: {dict(counts)}")
        await asyncio.sleep(every)


def user_period(rng: random.Random) -> Period:
    """A past period none of the scheduler's (which all end today) can equal."""
    end = datetime.now(UTC).date() - timedelta(days=rng.randint(31, 60))
    return Period(end - timedelta(days=rng.randint(6, 27)), end)


async def ask(
    scenario: Scenario,
    api: str,
    tokens: dict[str, str],
    accounts: dict[int, str],
    store_ids: list[int],
) -> list[int]:
    """Users' requests through the API at ``scenario.user_times`` for ``store_ids`` (each
    with its account's token, ``accounts``: store id → account); returns their job ids."""
    rng = random.Random(scenario.seed + 1)
    wanted: dict[tuple[int, Period], float] = {}
    for at in scenario.user_times:
        while (request := (rng.choice(store_ids), user_period(rng))) in wanted:
            pass  # each request its own job: no two for one store and period
        wanted[request] = at
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:

        async def one(store_id: int, period: Period, at: float) -> int:
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            return await request_sync(http, tokens[accounts[store_id]], store_id, period)

        return list(await asyncio.gather(*(one(s, p, at) for (s, p), at in wanted.items())))


async def request_sync(http: httpx.AsyncClient, token: str, store_id: int, period: Period) -> int:
    """``POST /api/stores/{id}/sync``; the job's id."""
    body = {"start": period.start.isoformat(), "end": period.end.isoformat()}
    headers = {"Authorization": f"Bearer {token}"}
    response = await http.post(f"/api/stores/{store_id}/sync", json=body, headers=headers)
    for _ in range(60):  # 503: the database is away for a moment; a user tries again
        if response.status_code != 503:
            break
        await asyncio.sleep(1.0)
        response = await http.post(f"/api/stores/{store_id}/sync", json=body, headers=headers)
    if response.status_code != 202:
        raise RuntimeError(f"the API answered {response.status_code}: {response.text}")
    return int(response.json()["id"])


#: Requests the noisy neighbour keeps in flight at once.
FLOOD_CONCURRENCY = 16


async def flood(scenario: Scenario, api: str, token: str, store_ids: list[int]) -> list[int]:
    """Account 0's ``scenario.flood`` syncs of distinct single days (long past, so no other
    request's period), through the API as fast as it answers; their job ids."""
    if not scenario.flood:
        return []
    first = datetime.now(UTC).date() - timedelta(days=120)
    requests = [
        (store_ids[n % len(store_ids)], first - timedelta(days=n // len(store_ids)))
        for n in range(scenario.flood)
    ]
    jobs: list[int] = []
    async with httpx.AsyncClient(base_url=api, timeout=60) as http:

        async def worker(mine: list[tuple[int, Any]]) -> None:
            for store_id, day in mine:
                jobs.append(await request_sync(http, token, store_id, Period(day, day)))

        await asyncio.gather(
            *(worker(requests[k::FLOOD_CONCURRENCY]) for k in range(FLOOD_CONCURRENCY))
        )
    return jobs


async def run(scenario: Scenario, database_url: str, workdir: Path) -> Outcome:
    """Run ``scenario`` against a fresh database at ``database_url``; analyse what happened."""
    config = simulator_config(scenario)
    settings = Settings(database_url=database_url, data_dir=workdir / "data", secret_key=SECRET_KEY)
    database = connect(settings)
    deadline = time.monotonic() + scenario.timeout
    try:
        await migrate(database)
        store_ids = await add_stores(database, settings, config, scenario)
        names = sorted({scenario.account(i) for i in range(scenario.stores)})
        tokens = {name: await create_token(database, name, "scale benchmark") for name in names}
        token = tokens[scenario.account(1 if scenario.accounts > 1 else 0)]  # the users'
        others = [
            s for i, s in enumerate(store_ids) if scenario.accounts == 1 or i % scenario.accounts
        ]
        config_file = workdir / "simulator.json"
        config_file.write_text(json.dumps(config.to_json()))
        sim_port, api_port = free_port(), free_port()
        sim = f"http://127.0.0.1:{sim_port}"
        env = storesync_env(scenario, database_url, workdir, sim)
        cpu = _children_cpu()
        with processes() as started:
            simulator = launch(
                started,
                ["simulator", "--port", str(sim_port), "--config", str(config_file)],
                env,
                workdir / "simulator.log",
            )
            serve = ["serve", "--no-worker", "--no-access-log", "--port", str(api_port)]
            api = launch(started, serve, env, workdir / "api.log")  # needs no simulator
            await wait_http(f"{sim}/_sim/health", simulator)
            per_worker = math.ceil(scenario.max_concurrent_jobs / scenario.workers)
            for n in range(scenario.workers):
                worker = ["worker", "--concurrency", str(per_worker)]
                launch(started, worker, env, workdir / f"worker-{n}.log")
            for attempt in range(3):
                try:
                    await wait_http(f"http://127.0.0.1:{api_port}/healthz", api)
                    break
                except RuntimeError:
                    # `serve` exits when the database refuses it at startup (a shared server
                    # out of connections, say), where workers wait: start it again.
                    if api.poll() is None or attempt == 2:
                        raise
                    await asyncio.sleep(2)
                    api = launch(started, serve, env, workdir / "api.log")
            async with httpx.AsyncClient() as http:  # the first request pays for the imports
                await http.get(
                    f"http://127.0.0.1:{api_port}/api/stores",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                )
            backlog = scenario.users_after or scenario.scheduled_jobs
            await wait_until(
                database,
                lambda c: c["schedule"] >= backlog,
                deadline,
                f"the scheduler to queue {backlog} refreshes",
                every=0.1,  # users come right after: a test times them against aging
            )
            api_url = f"http://127.0.0.1:{api_port}"
            noisy = [s for i, s in enumerate(store_ids) if i % scenario.accounts == 0]
            flood_jobs, user_jobs = await asyncio.gather(
                flood(scenario, api_url, tokens[scenario.account(0)], noisy),
                ask(
                    scenario,
                    api_url,
                    tokens,
                    {s: scenario.account(i) for i, s in enumerate(store_ids)},
                    others,
                ),
            )
            total = scenario.scheduled_jobs + len(user_jobs) + len(flood_jobs)
            statuses = await wait_until(
                database,
                lambda c: sum(c[s] for s in FINISHED) >= total,
                deadline,
                "every job to finish",
            )
            async with httpx.AsyncClient() as http:
                log = await http.get(f"{sim}/_sim/requests", params={"limit": 0}, timeout=300)
                records = records_of(log.json()["requests"])
        cpu = _children_cpu() - cpu
        trace = await read_trace(database)
    finally:
        await database.dispose()
    shops = dict(zip(store_ids, config.stores, strict=True))
    accounts = {s: scenario.account(i) for i, s in enumerate(store_ids)}
    outcome = analyse(scenario, config, shops, trace, records, statuses, user_jobs, accounts)
    outcome.flood_jobs = flood_jobs
    outcome.cpu_seconds = cpu
    return outcome


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def analyse(
    scenario: Scenario,
    config: SimulatorConfig,
    shops: dict[int, SimStore],
    trace: Trace,
    records: Sequence[RequestRecord],
    statuses: Counter[str],
    user_jobs: list[int],
    accounts: dict[int, str] | None = None,
) -> Outcome:
    """The figures of a finished run (``shops``: store id → simulated store; ``accounts``:
    store id → account, when the stores have several)."""
    scheduled = [j for j in trace.jobs.values() if j.reason == "schedule"]
    start = min(j.queued_at for j in scheduled)
    end = max(j.completed_at or j.queued_at for j in scheduled)
    last = max(j.completed_at or j.queued_at for j in trace.jobs.values())
    busy = queued_while_store_busy(trace)
    waits = wait_summaries(trace)
    for label, picked in (("store free", False), ("store busy", True)):
        users = [
            j.wait
            for j in trace.jobs.values()
            if j.reason == "user" and j.wait is not None and (j.id in busy) is picked
        ]
        if users:
            waits[f"user, {label} when queued"] = Summary.of(users)
    noisy = scenario.account(0)
    if scenario.accounts > 1 and accounts:
        for label, picked in (("the flooding account", True), ("the other accounts", False)):
            users = [
                j.wait
                for j in trace.jobs.values()
                if j.reason == "user"
                and j.wait is not None
                and (accounts[j.store_id] == noisy) is picked
            ]
            if users:
                waits[f"user, {label}"] = Summary.of(users)
    longest = longest_wait_per_store(trace)
    worst_store = max(longest, key=lambda s: longest[s])
    aging = scenario.priority_aging_seconds
    # Accounts take turns (storesync.queue.fairness): a claim may take one account's job while
    # another account's older one waits, so the order is checked within each account.
    traces = [trace] if not accounts or scenario.accounts == 1 else _per_account(trace, accounts)
    return Outcome(
        scenario=scenario,
        config=config,
        trace=trace,
        limits=replay_limits(trace, scenario.max_concurrent_jobs),
        providers=audit_limits(records, config),
        passed=[
            p
            for t in traces
            for p in passed_over(t, aging_seconds=aging, slack=scenario.order_slack)
        ],
        near=[p for t in traces for p in passed_over(t, aging_seconds=aging, slack=0.0)],
        started_ahead=overtaken(trace, "user", "schedule"),
        waits=waits,
        longest_store_wait=(worst_store, longest[worst_store]),
        refresh_seconds=(end - start).total_seconds(),
        all_seconds=(last - start).total_seconds(),
        bound=lower_bound(scenario, config, shops, trace, records, start.timestamp()),
        statuses=Counter({s: statuses[s] for s in FINISHED if statuses[s]}),
        user_jobs=user_jobs,
    )


def _per_account(trace: Trace, accounts: dict[int, str]) -> list[Trace]:
    """``trace`` cut into one trace per account (its jobs and their events)."""
    traces = []
    for name in sorted(set(accounts.values())):
        jobs = {i: j for i, j in trace.jobs.items() if accounts[j.store_id] == name}
        traces.append(Trace(jobs, [e for e in trace.events if e.job_id in jobs]))
    return traces


def lower_bound(
    scenario: Scenario,
    config: SimulatorConfig,
    shops: dict[int, SimStore],
    trace: Trace,
    records: Sequence[RequestRecord],
    start: float,
) -> Bound:
    """The least time the scheduled refreshes needed from ``start``, whatever the order.

    Users' requests are left out (they only add work): their Shopify calls are recognised by
    their period, and Klaviyo's are counted as two report calls for each scheduled sync.
    """
    syncs = Counter(j.store_id for j in trace.jobs.values() if j.reason == "schedule")
    most = max(syncs.values())
    klaviyo = window_seconds(2 * most, config.klaviyo_limits.reports, start)
    users = {_orders_range(shops[j.store_id], j) for j in trace.jobs.values() if j.reason == "user"}
    refresh = [
        r
        for r in records
        if r.provider != "shopify"
        or (r.account, _instant(r.created_at_min), _instant(r.created_at_max)) not in users
    ]
    per_sync = shopify_seconds_per_sync(refresh, config)
    per_store: dict[str, float] = defaultdict(float)
    for (shop, _, _), seconds in per_sync.items():
        per_store[shop] += seconds  # one store's syncs run one at a time
    for shop, seconds in shopify_seconds(refresh, config).items():
        per_store[shop] = max(per_store[shop], seconds)
    slowest, shopify = max(per_store.items(), key=lambda item: item[1], default=("-", 0.0))
    return Bound(
        klaviyo=klaviyo,
        klaviyo_calls=2 * most,
        shopify=shopify,
        shopify_store=slowest,
        slot_seconds=sum(per_sync.values()),
        slots=scenario.max_concurrent_jobs,
    )


def _orders_range(store: SimStore, job: JobTrace) -> tuple[str, datetime, datetime]:
    start, end = Period(job.period_start, job.period_end).utc_bounds(ZoneInfo(store.timezone))
    return store.shop_domain, start, end


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


# -- the report ------------------------------------------------------------------------------


def _limits_line(config: SimulatorConfig, wide: bool) -> str:
    reports = config.klaviyo_limits.reports
    bucket = config.stores[0].bucket_size or config.bucket_size
    rate = config.stores[0].restore_rate or config.restore_rate
    kind = "widened limits (a test's)" if wide else "the providers' real default limits"
    return (
        f"{kind}: Shopify bucket {bucket:,.0f} points + {rate:,.0f}/s per shop; Klaviyo "
        f"reports {reports.burst}/s, {reports.steady}/min, {reports.daily}/day per account"
    )


def report(outcome: Outcome) -> str:
    """The printed figures (Markdown, so that ``run_all`` can quote them)."""
    s, b = outcome.scenario, outcome.bound
    queued = [j.queued_at for j in outcome.trace.jobs.values() if j.reason == "schedule"]
    enqueue = (max(queued) - min(queued)).total_seconds()
    per_attempt = 1000 * outcome.cpu_seconds / max(1, outcome.limits.claims)
    users = len(outcome.user_jobs)
    window = max(s.user_times, default=0.0)
    ratio = outcome.refresh_seconds / b.seconds if b.seconds else float("inf")
    per_minute = outcome.config.klaviyo_limits.reports.steady or b.klaviyo_calls
    lines = [
        f"{s.stores:,} stores on the simulator with {_limits_line(outcome.config, s.wide_limits)}.",
        f"PostgreSQL, {s.workers} `storesync worker` processes, "
        f"`STORESYNC_MAX_CONCURRENT_JOBS={s.max_concurrent_jobs}`, priority aging "
        f"{s.priority_aging_seconds:g} s a point. The built-in scheduler queued "
        f"{s.scheduled_jobs:,} refreshes (today, last 7 days, last 30 days of each store); "
        f"{users} users asked for other periods through the API over {window:.0f} s while "
        "those waited.",
        "",
        f"**Refresh of {s.stores:,} stores: {outcome.refresh_seconds:.1f} s** (the scheduler's "
        f"first enqueue to the last scheduled job's completion; {outcome.all_seconds:.1f} s with "
        "the users' requests). Jobs: "
        + ", ".join(f"{n:,} {status}" for status, n in outcome.statuses.items())
        + ".",
        "",
        f"**Lower bound: {b.seconds:.1f} s** (ratio {ratio:.2f}), the largest of:",
        "",
        f"- Klaviyo: {b.klaviyo:.1f} s. A store's {b.klaviyo_calls // 2} scheduled syncs make "
        f"{b.klaviyo_calls} report calls; at {per_minute} a minute in fixed windows, the last "
        f"cannot come before the start of the {_ordinal(math.ceil(b.klaviyo_calls / per_minute))} "
        "minute window, counted from the one the refresh began in.",
        f"- Shopify: {b.shopify:.1f} s for the slowest store ({b.shopify_store}): its calls, as "
        "made, need (Σ actual cost of every call but the last + the last's requested cost − "
        "bucket) ÷ restore rate, from a full bucket (per sync, summed over its syncs, which "
        "run one at a time, when that is more).",
        f"- The concurrency limit: {b.slot_seconds:,.0f} slot-seconds ÷ {b.slots} slots = "
        f"{b.by_slots:.1f} s. A sync holds its slot while it waits for its shop's bucket, at "
        "least as long as the Shopify formula gives for that sync alone.",
        "",
        f"Beyond the bound, the run waited on the machine: the scheduler took {enqueue:.0f} s "
        f"to queue its refreshes, and the simulator, the workers and the API used "
        f"{outcome.cpu_seconds:,.0f} s of CPU ({per_attempt:.0f} ms per attempt) on "
        f"{os.cpu_count()} cores shared with PostgreSQL (and whatever else runs there).",
        "",
        "Waits, queued → first claimed (seconds):",
        "",
        "| reason | priority | jobs | p50 | p95 | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    priority = {j.reason: j.priority for j in outcome.trace.jobs.values()}
    for reason, w in outcome.waits.items():
        lines.append(
            f"| {reason} | {priority[reason.split(',')[0]]} | {w.count:,} | {w.p50:.2f} "
            f"| {w.p95:.2f} | {w.max:.2f} |"
        )
    ahead = sorted(outcome.started_ahead.values())
    store, wait = outcome.longest_store_wait
    deferred = sum(j.deferrals for j in outcome.trace.jobs.values())
    providers = outcome.providers
    lines += [
        "",
        f"- Longest wait of any store: {wait:.1f} s (store {store}).",
        f"- Each user's request started ahead of {_median(ahead):,.0f} queued scheduled jobs "
        f"(median; fewest {ahead[0] if ahead else 0:,}): queued before it, started after it. A "
        "request that came while its store was syncing waited for that sync (one job per "
        "store).",
        "- Claims that took a job while another with a higher effective priority (priority + "
        f"aging) had been due, its store free, for {s.order_slack:g} s or more: "
        f"{len(outcome.passed)}; for less: {len(outcome.near) - len(outcome.passed)} (the "
        "log's clocks are read before the statements commit, so those may not have been "
        "visible yet).",
        f"- Attempts that ended back in the queue (a spent Klaviyo minute, a retry): {deferred:,}.",
        "",
        "Limits:",
        "",
        f"- Global, from the job event log: at most {outcome.limits.limit} processing at every "
        f"one of {outcome.limits.claims:,} claims, peak {outcome.limits.peak}: "
        f"{_held(outcome.limits.held)}.",
        f"- Per store: never two processing, peak {outcome.limits.peak_per_store}: "
        f"{_held(outcome.limits.peak_per_store <= 1)}.",
        "- Providers, from the simulator's request log: "
        + ", ".join(f"{n:,} {p} calls" for p, n in sorted(providers.calls.items()))
        + f"; {len(providers.over_limit)} accepted beyond a limit: {_held(providers.held)}. "
        "Refused (THROTTLED or 429: the limit held, but the client had not paced itself): "
        f"{_refusals(providers)}.",
    ]
    lines += [f"  - {v}" for v in (outcome.limits.violations + providers.over_limit)[:10]]
    lines += [f"  - passed over: {p}" for p in outcome.passed[:10]]
    return "\n".join(lines)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _median(values: list[int]) -> float:
    return Summary.of(values).p50 if values else 0.0


def _refusals(audit: LimitAudit) -> str:
    kinds = Counter(f"{r.provider} {r.endpoint}" for r in audit.refused)
    return f"{len(audit.refused)}" + (
        f" ({', '.join(f'{n} {k}' for k, n in kinds.most_common())})" if kinds else ""
    )


def _held(ok: bool) -> str:
    return "held" if ok else "BROKEN"


# -- the noisy neighbour ---------------------------------------------------------------------

OTHERS = "user, the other accounts"
#: The others' p95 wait with the flood may be at most this many times the quiet run's.
NOISY_FACTOR = 2.0


@dataclass
class NoisyNeighbour:
    """The same scenario run quiet, then with account 0 flooding (and, for contrast, flooding
    with fairness off)."""

    quiet: Outcome
    flooded: Outcome
    unfair: Outcome | None = None
    #: Flooded, with slots kept for the other accounts (``running_cap``).
    capped: Outcome | None = None

    def ratio_of(self, outcome: Outcome) -> float:
        """The others' p95 wait in ``outcome`` ÷ the quiet run's."""
        return outcome.waits[OTHERS].p95 / max(self.quiet.waits[OTHERS].p95, 1e-3)

    @property
    def ratio(self) -> float:
        """The others' p95 wait flooded ÷ quiet (with the running cap when it ran: the
        setting a multi-tenant deployment uses to keep its tenants' starts quick)."""
        return self.ratio_of(self.capped or self.flooded)

    @property
    def ok(self) -> bool:
        runs = (self.quiet, self.flooded, *([self.capped] if self.capped else []))
        return all(o.ok for o in runs) and self.ratio <= NOISY_FACTOR


async def noisy_neighbour(
    scenario: Scenario,
    fresh_database: Any,
    workdir: Path,
    *,
    unfair: bool = False,
    running_cap: int = 0,
) -> NoisyNeighbour:
    """Run ``scenario`` (``flood`` > 0, ``accounts`` > 1) quiet and flooded, each on a database
    from ``fresh_database()`` (an awaitable URL); ``unfair`` adds a flooded run without
    fairness, ``running_cap`` one with that many slots at most per account."""
    if scenario.flood < 1 or scenario.accounts < 2:
        raise ValueError("a noisy neighbour needs a flood and two accounts or more")
    runs: dict[str, Scenario] = {
        "quiet": dataclasses.replace(scenario, flood=0),
        "flooded": scenario,
    }
    if unfair:
        runs["unfair"] = dataclasses.replace(scenario, fairness_points=0.0)
    if running_cap:
        runs["capped"] = dataclasses.replace(scenario, running_cap=running_cap)
    outcomes = {}
    for name, each in runs.items():
        (workdir / name).mkdir(parents=True, exist_ok=True)
        outcomes[name] = await run(each, await fresh_database(), workdir / name)
    return NoisyNeighbour(
        outcomes["quiet"], outcomes["flooded"], outcomes.get("unfair"), outcomes.get("capped")
    )


def noisy_report(result: NoisyNeighbour) -> str:
    """The noisy neighbour's figures (Markdown)."""
    s = result.flooded.scenario
    others = len(result.quiet.user_jobs)
    lines = [
        f"Noisy neighbour: {s.stores} stores dealt to {s.accounts} accounts, PostgreSQL, "
        f"{s.workers} `storesync worker` processes, `STORESYNC_MAX_CONCURRENT_JOBS="
        f"{s.max_concurrent_jobs}`, {_limits_line(result.flooded.config, s.wide_limits)}"
        + (f", {s.latency_ms:g} ms added to every provider answer" if s.latency_ms else "")
        + f". The other accounts' users make {others} requests through the API over "
        f"{max(s.user_times, default=0):.0f} s; in the flooded runs account 0 queues {s.flood} "
        "syncs of distinct days through the API at the same time, as fast as it answers.",
        "",
        "| run | others' requests | p50 (s) | p95 (s) | max (s) | flood's jobs | all done (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    named = [("quiet", result.quiet), ("flooded, fair claims", result.flooded)]
    if result.unfair is not None:
        named.append(
            ("flooded, fairness off (`STORESYNC_ACCOUNT_FAIRNESS_POINTS=0`)", result.unfair)
        )
    if result.capped is not None:
        cap = result.capped.scenario.running_cap
        named.append(
            (f"flooded, fair claims, `STORESYNC_MAX_RUNNING_JOBS_PER_ACCOUNT={cap}`", result.capped)
        )
    for name, outcome in named:
        w = outcome.waits[OTHERS]
        lines.append(
            f"| {name} | {w.count} | {w.p50:.2f} | {w.p95:.2f} | {w.max:.2f} "
            f"| {len(outcome.flood_jobs)} | {outcome.all_seconds:.1f} |"
        )
    verdict = "within" if result.ratio <= NOISY_FACTOR else "NOT within"
    which = "with the running cap" if result.capped else "with fair claims"
    lines += [
        "",
        f"**The others' p95 wait with the flood, {which}: {result.ratio:.2f}× the quiet "
        f"run's** ({verdict} {NOISY_FACTOR:g}×; {result.ratio_of(result.flooded):.2f}× with "
        "fair claims and every slot open to any account). Limits (global, per store, "
        "providers) and the order within each account held in every run: "
        + _held(all(o.ok for _, o in named))
        + ".",
    ]
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3, help="storesync worker processes")
    parser.add_argument(
        "--concurrency", type=int, default=200, help="STORESYNC_MAX_CONCURRENT_JOBS"
    )
    parser.add_argument("--users", type=int, default=100, help="users' requests through the API")
    parser.add_argument("--user-window", type=float, default=60.0, help="seconds they arrive over")
    parser.add_argument("--aging", type=float, default=60.0, help="seconds per priority point")
    parser.add_argument("--postgres", default=ADMIN_URL, help="admin URL of the PostgreSQL server")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    parser.add_argument("--accounts", type=int, default=1, help="accounts the stores belong to")
    parser.add_argument(
        "--noisy-neighbour",
        type=int,
        default=0,
        metavar="SYNCS",
        help="run quiet, then with account 0 queuing SYNCS syncs through the API (and once "
        "more with fairness off); compare the other accounts' waits",
    )
    parser.add_argument(
        "--running-cap",
        type=int,
        default=0,
        metavar="JOBS",
        help="with --noisy-neighbour, one more flooded run with "
        "STORESYNC_MAX_RUNNING_JOBS_PER_ACCOUNT=JOBS",
    )
    parser.add_argument(
        "--wide-limits", action="store_true", help="providers' limits that never bind (a test's)"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    began = time.monotonic()
    scenario = Scenario(
        stores=args.stores,
        workers=args.workers,
        max_concurrent_jobs=args.concurrency,
        user_times=spread(args.users, args.user_window),
        priority_aging_seconds=args.aging,
        accounts=args.accounts,
        flood=args.noisy_neighbour,
        wide_limits=args.wide_limits,
        latency_ms=args.latency_ms,
    )
    for key, value in (await machine(args.postgres)).items():
        print(f"{key:>10}: {value}")
    print(f"   command: python -m benchmarks.scale {' '.join(sys.argv[1:])}\n", flush=True)
    if args.noisy_neighbour:
        return await main_noisy(args, scenario, began)
    url = await recreate(args.postgres, SCRATCH_DATABASE)
    workdir = Path(tempfile.mkdtemp(prefix="storesync-bench-scale-"))
    try:
        outcome = await run(scenario, url, workdir)
    finally:
        if not args.keep:
            await drop(args.postgres, SCRATCH_DATABASE)
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(outcome))
    if args.keep:
        print(f"\nlogs in {workdir}; database {SCRATCH_DATABASE}")
    print(f"\n(total {time.monotonic() - began:.0f} s; load average at the end: {load()})")
    return 0 if outcome.ok else 1


async def main_noisy(args: argparse.Namespace, scenario: Scenario, began: float) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="storesync-bench-noisy-"))

    async def fresh() -> str:
        return await recreate(args.postgres, SCRATCH_DATABASE)

    try:
        result = await noisy_neighbour(
            scenario, fresh, workdir, unfair=True, running_cap=args.running_cap
        )
    finally:
        if not args.keep:
            await drop(args.postgres, SCRATCH_DATABASE)
            shutil.rmtree(workdir, ignore_errors=True)
    print(noisy_report(result))
    print("\n### The flooded run with fair claims, in full\n")
    print(report(result.flooded))
    print(f"\n(total {time.monotonic() - began:.0f} s; load average at the end: {load()})")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))

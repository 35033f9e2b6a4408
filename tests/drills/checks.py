"""The promises every fault drill checks, from the records alone, once the work is done:

- :func:`assert_jobs_ended`: every job completed, or failed with a message a person can read;
- :func:`assert_none_lost`: every requested store-period has a finished job or fresh figures;
- :func:`assert_cache_consistent`: one cache row per store, data type and period, and both
  data types for every period a job completed;
- :func:`assert_queue_limits`: the job event log, replayed in the order the database wrote it
  (:mod:`storesync.audit`), never shows more than the global limit processing, nor two jobs
  of one store;
- :func:`assert_provider_limits`: the simulator's request log shows every accepted call within
  its shop's bucket and its account's windows (:mod:`storesync.simulator.audit`), Shopify
  never throttling, Klaviyo refusing (almost) nothing, one Shopify call at a time per shop, no
  more stores in flight than the global limit, and every ``Retry-After`` honoured;
- :func:`assert_no_credentials`: every log is JSON lines without a credential in it;
- :func:`assert_lost_only_when_taken_back`: a worker's log calls a job lost only when it was.

:func:`assert_drill_invariants` runs them all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from sqlalchemy.pool import NullPool

from storesync.audit import Event, Trace, read_trace, replay_limits
from storesync.settings import Settings
from storesync.simulator import SimulatorConfig
from storesync.simulator.audit import audit_limits, klaviyo_group, records_of
from storesync.storage import connect
from tests.drills.support import (
    FINISHED,
    HTTP_TIMEOUT_SECONDS,
    MAX_CONCURRENT_JOBS,
    Key,
    job_key,
    jobs,
    query,
)
from tests.harness import SimulatorProcess, max_overlap


def lifetimes(db_url: str) -> dict[Key, list[tuple[int, int]]]:
    """Per store-period, each job's first and last event (ids: the order they were written)."""
    rows = query(
        db_url,
        "SELECT q.store_id, q.period_start, q.period_end, min(e.id) AS first, "
        "max(e.id) AS last FROM sync_queue q JOIN sync_job_events e ON e.job_id = q.id "
        "GROUP BY q.id",
    )
    spans: dict[Key, list[tuple[int, int]]] = defaultdict(list)
    for row in rows:
        spans[job_key(row)].append((row["first"], row["last"]))
    return spans


def assert_one_job_at_a_time(db_url: str) -> None:
    """No two jobs of one store-period were ever alive together (de-duplication held)."""
    for key, spans in lifetimes(db_url).items():
        spans.sort()
        assert all(a[1] < b[0] for a, b in pairwise(spans)), f"two jobs of {key} at once"


def readable(message: str | None) -> bool:
    """A reason a store owner or operator can act on: words, not a traceback or a bug."""
    return (
        bool(message)
        and len(message or "") >= 15
        and " " in (message or "")
        and "Traceback" not in (message or "")
        and not (message or "").startswith("internal error")
    )


def assert_jobs_ended(db_url: str) -> list[dict[str, Any]]:
    """Every job completed, or failed with a readable reason; returns the jobs."""
    rows = jobs(db_url)
    assert rows, "the drill queued no job"
    unfinished = [(r["id"], r["status"]) for r in rows if r["status"] not in FINISHED]
    assert unfinished == [], f"jobs left unfinished: {unfinished}"
    cancelled = [r["id"] for r in rows if r["status"] == "cancelled"]
    assert cancelled == [], "nobody cancelled anything in a drill"
    unclear = [
        (r["id"], r["error_message"])
        for r in rows
        if r["status"] == "failed" and not readable(r["error_message"])
    ]
    assert unclear == [], f"failed without a clear reason: {unclear}"
    assert all(r["error_message"] is None for r in rows if r["status"] == "completed")
    return rows


def assert_none_lost(db_url: str, requested: Iterable[Key]) -> None:
    """Every requested store-period has a job that ended, or fresh figures in the cache."""
    ended = {job_key(r) for r in jobs(db_url) if r["status"] in ("completed", "failed")}
    now = datetime.now(UTC)
    fresh = Counter(
        job_key(r)
        for r in query(db_url, "SELECT * FROM store_sync_cache WHERE NOT stale")
        if r["expires_at"] is None or r["expires_at"] > now
    )
    lost = [k for k in set(requested) if k not in ended and fresh[k] < 2]
    assert lost == [], f"requested but neither synced nor cached: {sorted(lost)}"


def assert_cache_consistent(db_url: str) -> None:
    """One row per store, data type and period; both data types for every completed period."""
    rows = query(db_url, "SELECT * FROM store_sync_cache")
    per_type = Counter((*job_key(r), r["data_type"]) for r in rows)
    assert [k for k, n in per_type.items() if n > 1] == []
    completed = {job_key(r) for r in jobs(db_url) if r["status"] == "completed"}
    cached = {key[:3]: set() for key in per_type}
    for key in per_type:
        cached[key[:3]].add(key[3])
    missing = [k for k in completed if cached.get(k) != {"shopify", "klaviyo"}]
    assert missing == [], f"completed without both cache rows: {missing}"
    requested = {job_key(r) for r in jobs(db_url)}
    assert set(cached) <= requested, "cache rows no job wrote"


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One stay of a job in ``processing``, from its claim to the event that ended it."""

    job_id: int
    worker_id: str
    claimed: dict[str, Any]
    ended: dict[str, Any]

    @property
    def rescued(self) -> bool:
        """Taken back by a rescue (the holder stopped heart-beating), not ended by it."""
        message = self.ended["message"] or ""
        return self.ended["kind"] == "rescued" or "stopped responding" in message


@dataclasses.dataclass(frozen=True)
class QueueReplay:
    peak: int  # most jobs processing at once
    attempts: list[Attempt]

    @property
    def rescues(self) -> list[Attempt]:
        return [a for a in self.attempts if a.rescued]


def assert_queue_limits(db_url: str, limit: int = MAX_CONCURRENT_JOBS) -> QueueReplay:
    """Replay the job event log in the order the database wrote it (``storesync.audit``) and
    check both limits at every claim; returns the peak and every attempt."""

    async def trace() -> Trace:
        database = connect(Settings(database_url=db_url), poolclass=NullPool)
        try:
            return await read_trace(database)
        finally:
            await database.dispose()

    report = replay_limits(asyncio.run(trace()), limit)
    assert report.held, f"the queue broke its limits: {report.violations[:5]}"
    assert report.peak_per_store == 1
    return QueueReplay(report.peak, attempts(db_url))


def attempts(db_url: str) -> list[Attempt]:
    """Every attempt, with the worker its claim names (``claimed by host:pid:suffix``)."""
    rows = query(db_url, "SELECT * FROM sync_job_events ORDER BY id")
    running: dict[int, dict[str, Any]] = {}
    found = []
    for row in rows:
        event = Event(row["id"], row["job_id"], row["at"], row["kind"], bool(row["data"]))
        if event.kind == "claimed":
            running[event.job_id] = row
        elif event.ends_attempt and event.job_id in running:
            claim = running.pop(event.job_id)
            worker = claim["message"].removeprefix("claimed by ")
            found.append(Attempt(event.job_id, worker, claim, row))
    return found


def _stores_in_flight(spans: dict[str, list[tuple[float, float]]]) -> int:
    """The most stores with a call in flight at one instant."""
    edges = sorted(
        (t, step, store)
        for store, intervals in spans.items()
        for start, end in intervals
        for t, step in ((start, 1), (end, -1))
    )
    open_calls: Counter[str] = Counter()
    peak = 0
    for _t, step, store in edges:
        open_calls[store] += step
        peak = max(peak, sum(1 for n in open_calls.values() if n > 0))
    return peak


def _neighbours(requests: list[dict[str, Any]], call: dict[str, Any]) -> str:
    """The calls of ``call``'s account within two seconds of it, one per line."""
    return "\n".join(
        f"{r['time'] - call['time']:+.3f} s {r['method']} {r['path']} -> {r['status']} "
        f"fault={r['fault']} throttled={r['throttled']} {r['duration_ms']:.0f} ms"
        for r in requests
        if r["account"] == call["account"] and abs(r["time"] - call["time"]) < 2
    )


def _overlapping(requests: list[dict[str, Any]], shop: str) -> str:
    """The Shopify calls of ``shop`` that overlap another, one per line."""
    calls = sorted(
        (r for r in requests if r["provider"] == "shopify" and r["account"] == shop),
        key=lambda r: r["time"],
    )
    lines = []
    for before, after in pairwise(calls):
        if after["time"] < before["time"] + min(before["duration_ms"] / 1000, HTTP_TIMEOUT_SECONDS):
            for r in (before, after):
                lines.append(
                    f"{shop} {r['time']:.3f} +{r['duration_ms']:.0f} ms {r['operation']} "
                    f"-> {r['status']} fault={r['fault']}"
                )
    return "\n".join(lines)


#: Slack between the simulator's clock reading and the client's, for Retry-After checks.
CLOCK_SLACK = 0.05


def assert_provider_limits(
    simulator: SimulatorProcess, limit: int = MAX_CONCURRENT_JOBS
) -> list[dict[str, Any]]:
    """Check the simulator's request log; returns it.

    Shopify never had to refuse a call (the cost buckets are far larger than a sync needs,
    so a genuine THROTTLED means the pacing is broken). Klaviyo's windows are counted where
    the simulator handles a call, which under a loaded CPU can lag its arrival by most of a
    second; so a refusal of a call the client paced correctly can happen, rarely, and must be
    honoured like any other 429.
    """
    requests = simulator.requests()
    assert requests, "no provider call reached the simulator"
    config = SimulatorConfig.from_json(simulator.get("/_sim/config"))
    audit = audit_limits(records_of(requests), config)
    assert audit.held, f"accepted calls beyond the providers' limits: {audit.over_limit[:5]}"
    refused = [r for r in requests if r["throttled"] and r["provider"] == "shopify"]
    assert refused == [], "Shopify had to refuse calls:\n" + _neighbours(requests, refused[0])
    klaviyo = [r for r in requests if r["provider"] == "klaviyo"]
    refused = [r for r in klaviyo if r["throttled"]]
    assert len(refused) <= 1 + len(klaviyo) // 100, (
        f"Klaviyo had to refuse {len(refused)} of {len(klaviyo)} calls; around the first:\n"
        + _neighbours(requests, refused[0])
    )

    store_of = {s.klaviyo_account_id: s.shop_domain for s in simulator.config.stores}
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    shopify: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in requests:
        if not r["account"]:
            continue
        # A call the simulator took longer than the client's timeout to answer was given up
        # by then: the client's retry is not a second call at once.
        span = (r["time"], r["time"] + min(r["duration_ms"] / 1000, HTTP_TIMEOUT_SECONDS))
        store = r["account"] if r["provider"] == "shopify" else store_of[r["account"]]
        spans[store].append(span)
        if r["provider"] == "shopify":
            shopify[store].append(span)
    crowded = [shop for shop, intervals in shopify.items() if max_overlap(intervals) > 1]
    assert crowded == [], f"Shopify calls of one shop at once: {crowded}\n" + "\n".join(
        _overlapping(requests, shop) for shop in crowded
    )
    assert _stores_in_flight(spans) <= limit

    # After a 429 (the simulator's Retry-After is 1 s or more) the next call of that account
    # and rate-limit group waits; calls already in flight when the answer came are excused.
    by_channel: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in requests:
        if r["account"]:
            group = "graphql" if r["provider"] == "shopify" else klaviyo_group(r["endpoint"])
            by_channel[(r["account"], group)].append(r)
    hasty = []
    for channel, calls in by_channel.items():
        calls.sort(key=lambda r: r["time"])
        for throttled in (r for r in calls if r["status"] == 429):
            answered = throttled["time"] + throttled["duration_ms"] / 1000
            later = [r for r in calls if r["time"] > answered]
            if later and later[0]["time"] < answered + 1.0 - CLOCK_SLACK:
                hasty.append((channel, round(later[0]["time"] - answered, 3)))
    assert hasty == [], f"calls sent before the Retry-After passed: {hasty}"
    return requests


def assert_no_credentials(logs: list[Path], secrets: list[str]) -> None:
    """Each log is JSON lines, none of which contains a credential."""
    texts = {log.name: log.read_text() for log in logs}
    assert any(texts.values()), "every log is empty: nothing to check"
    for name, text_ in texts.items():
        for line in text_.splitlines():
            json.loads(line)  # a JSON-lines log (a traceback would break it)
        leaked = [s[:8] + "…" for s in secrets if s in text_]
        assert leaked == [], f"{name} shows credentials: {leaked}"


def assert_lost_only_when_taken_back(db_url: str, logs: list[Path]) -> None:
    """A worker logs a job "lost" only when a rescue really took it back (a job its own
    completion finished is "completed", in the log and in the metrics)."""
    lost = set()
    for log in logs:
        for line in log.read_text().splitlines():
            message = json.loads(line)["message"]
            if message.startswith("job ") and message.endswith(": lost"):
                lost.add(int(message.split()[1].rstrip(":")))
    if not lost:
        return
    taken_back = {
        r["job_id"]
        for r in query(
            db_url,
            "SELECT job_id FROM sync_job_events WHERE kind = 'rescued' "
            "OR (kind = 'failed' AND message LIKE '%stopped responding%')",
        )
    }
    assert lost <= taken_back, f"logged lost, never taken back: {sorted(lost - taken_back)}"


def assert_drill_invariants(
    db_url: str,
    simulator: SimulatorProcess,
    requested: Iterable[Key],
    logs: list[Path],
    secrets: list[str],
    *,
    limit: int = MAX_CONCURRENT_JOBS,
) -> QueueReplay:
    """The five promises of every drill (see the module docstring)."""
    assert_jobs_ended(db_url)
    assert_none_lost(db_url, requested)
    assert_cache_consistent(db_url)
    replay = assert_queue_limits(db_url, limit)
    assert_provider_limits(simulator, limit)
    assert_no_credentials(logs, secrets)
    assert_lost_only_when_taken_back(db_url, logs)
    return replay

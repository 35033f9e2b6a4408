"""What a run's job event log proves: the queue's limits, its order of service and its waits.

Every change of a job's state appends a line to ``sync_job_events`` in the transaction that
makes the change, so the log can be replayed. The replay follows the event ids, not the
clocks: a claim reads its clock before it waits for the claim lock, so by timestamps it can
seem to start before the completion that freed its slot. By ids it cannot. A completion's
line gets its id before that transaction commits, and a claim that saw the completion
committed writes its own line after that. So when the replay finds more jobs processing than
the limit allows, the queue really did break the limit.

- :func:`replay_limits` checks both limits at every claim: at most ``max_concurrent_jobs``
  processing, and never two jobs of one store.
- :func:`wait_summaries` gives the waits, from queued to first claimed, by reason;
  :func:`queued_while_store_busy` tells the jobs that had to wait for their store's sync.
- :func:`passed_over` finds claims that took a job while a better one waited. Better means a
  higher effective priority (priority plus a point per ``priority_aging_seconds`` waited), with
  that job due, its store free, and both true for at least ``slack`` seconds.
- :func:`overtaken` counts, for each job, the older jobs it started ahead of.

Used by ``benchmarks/scale.py`` and ``tests/scale``. The order check assumes what those runs
do: jobs queued without ``run_after``, and priorities not raised by a later duplicate request.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from storesync.queue.reads import job_history
from storesync.storage.engine import Database

#: Queue events that end an attempt (the job leaves ``processing``). The queue also writes
#: "retried" for an attempt that failed and was queued again; a connector writes "retried"
#: with data for one HTTP call tried again while the job still runs.
ATTEMPT_ENDS = frozenset({"completed", "failed", "rescued", "released", "cancelled"})


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the job event log, as the replay needs it."""

    seq: int  # the event's id: the order the database wrote the lines in
    job_id: int
    at: datetime
    kind: str
    has_data: bool

    @property
    def ends_attempt(self) -> bool:
        return self.kind in ATTEMPT_ENDS or (self.kind == "retried" and not self.has_data)


@dataclass(slots=True)
class JobTrace:
    """One job: its row's fixed facts and its claims."""

    id: int
    store_id: int
    period_start: date
    period_end: date
    reason: str
    priority: int
    status: str
    queued_at: datetime
    completed_at: datetime | None
    claims: list[Event] = field(default_factory=list)
    deferrals: int = 0  # attempts that ended by going back to the queue

    @property
    def wait(self) -> float | None:
        """Seconds from queued to first claimed (None: never claimed)."""
        if not self.claims:
            return None
        return (self.claims[0].at - self.queued_at).total_seconds()


@dataclass(frozen=True, slots=True)
class Trace:
    """The jobs and their events, in the order the database wrote the events."""

    jobs: dict[int, JobTrace]
    events: list[Event]


async def read_trace(database: Database) -> Trace:
    """Read every job and every event of the queue."""
    facts, lines = await job_history(database)
    jobs = {job.id: JobTrace(*job) for job in facts}
    events = [Event(*line) for line in lines]
    for event in events:
        job = jobs[event.job_id]
        if event.kind == "claimed":
            job.claims.append(event)
        elif event.kind == "retried" and not event.has_data:
            job.deferrals += 1
    return Trace(jobs, events)


# -- limits --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LimitReport:
    """The replay's findings: the peaks and every step that broke a limit."""

    limit: int
    peak: int  # most jobs processing at once
    peak_per_store: int  # most jobs of one store processing at once
    claims: int
    violations: list[str]

    @property
    def held(self) -> bool:
        return not self.violations


def replay_limits(trace: Trace, limit: int) -> LimitReport:
    """Replay the log in id order; check the global and per-store limits at every claim."""
    running: dict[int, int] = {}  # job id → store id
    per_store: Counter[int] = Counter()
    peak = peak_store = claims = 0
    violations: list[str] = []
    for event in trace.events:
        job = trace.jobs[event.job_id]
        if event.kind == "claimed":
            claims += 1
            if event.job_id in running:
                violations.append(f"event {event.seq}: job {job.id} claimed while processing")
                continue
            running[job.id] = job.store_id
            per_store[job.store_id] += 1
            peak, peak_store = max(peak, len(running)), max(peak_store, per_store[job.store_id])
            if len(running) > limit:
                violations.append(
                    f"event {event.seq}: {len(running)} jobs processing (limit {limit})"
                )
            if per_store[job.store_id] > 1:
                violations.append(
                    f"event {event.seq}: store {job.store_id} has "
                    f"{per_store[job.store_id]} jobs processing"
                )
        elif event.ends_attempt and running.pop(event.job_id, None) is not None:
            per_store[job.store_id] -= 1
    violations += [f"job {j}: its attempt never ended" for j in sorted(running)]
    return LimitReport(limit, peak, peak_store, claims, violations)


# -- waits ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """Count, median, 95th percentile and maximum of some seconds."""

    count: int
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, samples: Iterable[float]) -> Summary:
        values = sorted(samples)
        if not values:
            return cls(0, float("nan"), float("nan"), float("nan"))
        if len(values) == 1:
            return cls(1, values[0], values[0], values[0])
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cls(len(values), cuts[49], cuts[94], values[-1])


def wait_summaries(trace: Trace) -> dict[str, Summary]:
    """Queued → first claimed, by reason (``user``, ``webhook``, ``schedule``)."""
    waits: dict[str, list[float]] = defaultdict(list)
    for job in trace.jobs.values():
        if job.wait is not None:
            waits[job.reason].append(job.wait)
    return {reason: Summary.of(values) for reason, values in sorted(waits.items())}


def longest_wait_per_store(trace: Trace) -> dict[int, float]:
    """Each store's longest wait, queued → first claimed, over its jobs."""
    longest: dict[int, float] = {}
    for job in trace.jobs.values():
        if job.wait is not None:
            longest[job.store_id] = max(longest.get(job.store_id, 0.0), job.wait)
    return longest


def queued_while_store_busy(trace: Trace) -> set[int]:
    """Jobs queued while their store was processing another job (they wait for it: one job per
    store at a time, whatever the priorities)."""
    busy: dict[int, int] = {}  # store id → the job it is processing
    found: set[int] = set()
    for event in trace.events:
        job = trace.jobs[event.job_id]
        if event.kind == "queued" and busy.get(job.store_id, job.id) != job.id:
            found.add(job.id)
        elif event.kind == "claimed":
            busy[job.store_id] = job.id
        elif event.ends_attempt and busy.get(job.store_id) == job.id:
            del busy[job.store_id]
    return found


# -- order of service ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PassedOver:
    """A claim that took ``taken`` while ``waiting`` had a higher effective priority."""

    seq: int
    taken: int
    waiting: int
    points: float  # how much higher, in priority points


def passed_over(trace: Trace, *, aging_seconds: float, slack: float = 1.0) -> list[PassedOver]:
    """Claims that took a job while a better one waited, due, with its store free.

    The jobs that may have waited are those in their first wait: a job queued again after an
    attempt has a ``run_after`` the log does not show, so it is checked when it is claimed,
    not while it waits. Effective priorities compare the same at every instant
    (``p_a + (t − q_a)/aging > p_b + (t − q_b)/aging`` whatever ``t``), so waiting jobs are
    kept sorted by ``p − q/aging``.
    """
    waiting: list[tuple[float, int]] = []  # (-(p - q/aging), job id): best first
    busy: dict[int, int] = {}  # store id → the job it is processing
    free_since: dict[int, datetime] = {}  # store id → when its last attempt ended
    found: list[PassedOver] = []

    def key(job: JobTrace) -> float:
        return job.priority - job.queued_at.timestamp() / aging_seconds

    def forget(job: JobTrace) -> bool:
        entry = (-key(job), job.id)
        at = bisect.bisect_left(waiting, entry)
        if at < len(waiting) and waiting[at] == entry:
            del waiting[at]
            return True
        return False

    # One claim's jobs share its instant and are logged in no particular order, their lines
    # maybe interleaved with other sessions' (the ids come from one sequence).
    batches: dict[datetime, list[Event]] = defaultdict(list)
    for event in trace.events:
        if event.kind == "claimed":
            batches[event.at].append(event)
    for event in trace.events:
        job = trace.jobs[event.job_id]
        if event.kind == "queued":
            if not job.claims or job.claims[0].seq > event.seq:
                bisect.insort(waiting, (-key(job), job.id))
        elif event.kind == "claimed":
            batch = batches.pop(event.at, [])  # empty: checked with the first of its claim
            claimed = [trace.jobs[e.job_id] for e in batch]
            for taken in claimed:
                forget(taken)
            best = _best_ready(trace, waiting, busy, free_since, event.at, slack)
            for taken, line in zip(claimed, batch, strict=True):
                if best is not None and -best[0] > key(taken) + 1e-9:
                    found.append(PassedOver(line.seq, taken.id, best[1], -best[0] - key(taken)))
                busy[taken.store_id] = taken.id
        elif event.ends_attempt or event.kind == "cancel":
            forget(job)  # cancelled while it waited
            if busy.get(job.store_id) == job.id:
                del busy[job.store_id]
                free_since[job.store_id] = event.at
    return found


def _best_ready(
    trace: Trace,
    waiting: Sequence[tuple[float, int]],
    busy: dict[int, int],
    free_since: dict[int, datetime],
    now: datetime,
    slack: float,
) -> tuple[float, int] | None:
    """The best waiting job that was due, with its store free, ``slack`` seconds before."""
    for entry in waiting:
        job = trace.jobs[entry[1]]
        if job.store_id in busy or (now - job.queued_at).total_seconds() < slack:
            continue
        freed = free_since.get(job.store_id)
        if freed is not None and (now - freed).total_seconds() < slack:
            continue
        return entry
    return None


def overtaken(trace: Trace, reason: str, over: str) -> dict[int, int]:
    """For each first-claimed ``reason`` job: the ``over`` jobs queued before it and first
    claimed after it (the work it started ahead of)."""
    firsts = sorted((j for j in trace.jobs.values() if j.claims), key=lambda j: j.claims[0].seq)
    counts: dict[int, int] = {}
    for job in firsts:
        if job.reason != reason:
            continue
        started = job.claims[0].seq
        counts[job.id] = sum(
            1
            for other in firsts
            if other.reason == over
            and other.queued_at < job.queued_at
            and other.claims[0].seq > started
        )
    return counts

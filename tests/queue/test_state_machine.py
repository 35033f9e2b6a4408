"""A property-based state-machine test of the job life cycle (hypothesis).

Hypothesis drives the real :class:`JobQueue` with random sequences of every operation:
enqueue, claim, heartbeat, time passing, rescue, complete, fail, cancel, retry and release.
A model says what each job's state must be afterwards; after every step the database must
agree with it and keep the queue's invariants. Operations the model refuses must raise the
documented error and change nothing, not even the event log.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, func, select

from storesync.errors import InvalidStateError, NotFoundError
from storesync.queue import Job, JobQueue, JobStatus, LostJobError, Priority, Reason
from storesync.settings import Settings
from storesync.storage import Database, connect
from storesync.storage.crypto import SecretBox
from storesync.storage.models import JobEvent, SyncJob, table_of
from storesync.stores import StoreDirectory
from tests.conftest import FakeClock, add_store

EVENTS = table_of(JobEvent)
JOBS = table_of(SyncJob)

PERIODS = [
    (date(2026, 1, 1), date(2026, 1, 31)),
    (date(2026, 2, 1), date(2026, 2, 28)),
]
WORKERS = ["w1", "w2", "w3"]
MISSING_JOB = -1
ACTIVE = (JobStatus.QUEUED, JobStatus.PROCESSING)
FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
#: An enqueue request: store index, period, reason, and a delay in seconds (or none).
REQUESTS = st.tuples(
    st.integers(0, 2),
    st.sampled_from(PERIODS),
    st.sampled_from(list(Reason)),
    st.sampled_from([None, None, 20]),
)
#: Effective priorities are computed in SQL with floats: closer than this counts as a tie.
TIE = 1e-3

# Small numbers so that every limit is reached within a few dozen steps.
LIMITS: dict[str, Any] = {
    "max_concurrent_jobs": 2,
    "max_attempts": 2,
    "lease_seconds": 30.0,
    "job_timeout_seconds": 120.0,
    "retry_base_seconds": 10.0,
    "retry_max_seconds": 60.0,
    "priority_aging_seconds": 2.0,
}


@dataclass
class ModelJob:
    """What a job's row must hold, as far as the life cycle decides it."""

    id: int
    store: int
    period: tuple[date, date]
    priority: int
    queued_at: datetime
    run_after: datetime
    status: JobStatus = JobStatus.QUEUED
    retry_count: int = 0
    worker: str | None = None
    started_at: datetime | None = None
    lease_expires_at: datetime | None = None
    completed_at: datetime | None = None
    cancel_requested: bool = False
    has_error: bool = False

    def owned_by(self, worker: str) -> bool:
        return self.status is JobStatus.PROCESSING and self.worker == worker

    def requeue(self, run_after: datetime) -> None:
        self.status = JobStatus.QUEUED
        self.run_after = run_after
        self.worker = None
        self.started_at = None
        self.lease_expires_at = None


class JobLifeCycle(RuleBasedStateMachine):
    """One machine instance = one empty queue on the test's database and a fresh clock."""

    url: ClassVar[str]
    data_dir: ClassVar[Path]
    #: Store id → account: the first two stores share one, the third has its own.
    accounts: ClassVar[dict[int, str]]

    def __init__(self) -> None:
        super().__init__()
        self.settings = Settings(
            database_url=self.url,
            data_dir=self.data_dir,
            secret_key="test-secret-key",  # type: ignore[arg-type]
            **LIMITS,
        )
        self.runner = asyncio.Runner()
        self.clock = FakeClock()
        # Every step is a few short transactions: skip the pool's liveness ping to halve them.
        self.database: Database = connect(self.settings, pool_pre_ping=False)
        # A seeded jitter keeps every run of a test case identical, as shrinking requires.
        self.queue = JobQueue(self.database, self.settings, clock=self.clock, rng=random.Random(0))
        self.jobs: dict[int, ModelJob] = {}
        self.run(self._empty_queue())

    def run(self, awaitable: Awaitable[Any]) -> Any:
        return self.runner.run(awaitable)  # type: ignore[arg-type]

    def teardown(self) -> None:
        try:
            self.run(self.database.dispose())
        finally:
            self.runner.close()

    async def _empty_queue(self) -> None:
        async with self.database.transaction() as conn:
            await conn.execute(delete(EVENTS))
            await conn.execute(delete(JOBS))

    # -- helpers ---------------------------------------------------------------------------

    @property
    def store_ids(self) -> list[int]:
        return sorted(self.accounts)

    @property
    def now(self) -> datetime:
        return self.clock.now

    def effective(self, job: ModelJob) -> float:
        aging = self.settings.priority_aging_seconds
        return job.priority + (self.now - job.queued_at).total_seconds() / aging

    def clearly_better(self, a: ModelJob, b: ModelJob) -> bool:
        """Must ``a`` be claimed before ``b``? (Near-ties may go either way.)"""
        ea, eb = self.effective(a), self.effective(b)
        if ea > eb + TIE:
            return True
        same = a.priority == b.priority and a.queued_at == b.queued_at
        return same and a.id < b.id

    def check_accounts_took_turns(
        self, chosen: list[ModelJob], eligible: list[ModelJob], processing: list[ModelJob]
    ) -> None:
        """No store left out had a better fair score than the worst claimed job's (see
        storesync.queue.fairness): its effective priority less the fairness points for each job
        of its account running or claimed ahead of it."""
        points = self.settings.account_fairness_points
        account = self.accounts
        running = Counter(account[j.store] for j in processing)
        taken = {j.store for j in chosen}
        scores: list[float] = []
        next_in_line: list[float] = []
        for name in set(account.values()):
            mine = sorted(self.effective(j) for j in chosen if account[j.store] == name)[::-1]
            scores += [e - points * (running[name] + rank) for rank, e in enumerate(mine)]
            # The best job of a store left out would have come next in its account.
            left = [
                self.effective(j)
                for j in eligible
                if account[j.store] == name and j.store not in taken
            ]
            if left:
                next_in_line.append(max(left) - points * (running[name] + len(mine)))
        if scores and next_in_line:
            assert max(next_in_line) <= min(scores) + TIE, (next_in_line, scores)

    def running(self) -> list[ModelJob]:
        return [j for j in self.jobs.values() if j.status is JobStatus.PROCESSING]

    def pick_job(self, data: st.DataObject, *statuses: JobStatus) -> int:
        """Mostly a job in one of ``statuses``, else any job, now and then a missing one."""
        wanted = sorted(i for i, j in self.jobs.items() if j.status in statuses)
        choices = [*wanted, *wanted, *wanted, *sorted(self.jobs), MISSING_JOB]
        return data.draw(st.sampled_from(choices), label="job")

    def pick_running(self, data: st.DataObject) -> ModelJob:
        return data.draw(st.sampled_from(sorted(self.running(), key=lambda j: j.id)), label="job")

    def pick_worker(self, data: st.DataObject) -> str:
        """Mostly a worker that holds a job."""
        owners = sorted({j.worker for j in self.running() if j.worker})
        return data.draw(st.sampled_from([*owners, *owners, *WORKERS]), label="worker")

    def pick_ids(self, data: st.DataObject, worker: str) -> list[int]:
        """Up to three distinct ids, mostly of the jobs ``worker`` holds."""
        own = sorted(j.id for j in self.running() if j.worker == worker)
        choices = st.sampled_from([*own, *own, *sorted(self.jobs), MISSING_JOB])
        return data.draw(st.lists(choices, max_size=3, unique=True), label="ids")

    async def _snapshot(self, *, events: bool = True) -> tuple[list[Job], int]:
        """Every job row, by id, and the number of event-log lines."""
        async with self.database.read() as conn:
            rows = (await conn.execute(select(JOBS).order_by(JOBS.c.id))).mappings().all()
            count = await conn.scalar(select(func.count()).select_from(EVENTS)) if events else 0
        return [Job.from_row(r) for r in rows], int(count or 0)

    def refused(self, error: type[Exception], action: Callable[[], Awaitable[Any]]) -> None:
        """``action`` must raise ``error`` and leave every row and event as it was."""
        before = self.run(self._snapshot())
        with pytest.raises(error):
            self.run(action())
        assert self.run(self._snapshot()) == before

    # -- rules -----------------------------------------------------------------------------

    @initialize(requests=st.lists(REQUESTS, max_size=6))
    def some_jobs(self, requests: list[tuple[int, tuple[date, date], Reason, int | None]]) -> None:
        """Start most runs with work waiting, so that claims have something to choose from."""
        for request in requests:
            self.enqueue(*request)

    @rule(request=REQUESTS)
    def enqueue_one(self, request: tuple[int, tuple[date, date], Reason, int | None]) -> None:
        self.enqueue(*request)

    def enqueue(
        self, store: int, period: tuple[date, date], reason: Reason, delay: int | None
    ) -> None:
        store_id = self.store_ids[store]
        run_after = self.now + timedelta(seconds=delay) if delay is not None else None
        wanted = int(Priority.for_reason(reason))
        active = [
            j
            for j in self.jobs.values()
            if j.store == store_id and j.period == period and j.status in ACTIVE
        ]
        result = self.run(self.queue.enqueue(store_id, *period, reason=reason, run_after=run_after))
        if active:
            [job] = active
            assert not result.created and result.job.id == job.id
            job.priority = max(job.priority, wanted)
        else:
            assert result.created and result.job.id not in self.jobs
            self.jobs[result.job.id] = ModelJob(
                id=result.job.id,
                store=store_id,
                period=period,
                priority=wanted,
                queued_at=self.now,
                run_after=run_after or self.now,
            )

    @rule(worker=st.sampled_from(WORKERS), limit=st.sampled_from([1, 2, 3, 0]))
    def claim(self, worker: str, limit: int) -> None:
        processing = self.running()
        busy = {j.store for j in processing}
        eligible = [
            j
            for j in self.jobs.values()
            if j.status is JobStatus.QUEUED and j.run_after <= self.now and j.store not in busy
        ]
        free = self.settings.max_concurrent_jobs - len(processing)
        expected = max(0, min(limit, free, len({j.store for j in eligible})))

        claimed = self.run(self.queue.claim(worker, limit=limit))

        assert len(claimed) == expected
        chosen = [self.jobs[c.id] for c in claimed]
        assert all(j in eligible for j in chosen)
        assert len({j.store for j in chosen}) == len(chosen)
        # Best first, and no left-over job that had to go before a chosen one.
        ranked = sorted(chosen, key=lambda j: (-self.effective(j), j.queued_at, j.id))
        assert [j.id for j in chosen] == [j.id for j in ranked]
        by_store = {j.store: j for j in chosen}
        for left in (j for j in eligible if j not in chosen):
            rival = by_store.get(left.store)
            assert rival is None or not self.clearly_better(left, rival), (left, rival)
        self.check_accounts_took_turns(chosen, eligible, processing)
        for job, row in zip(chosen, claimed, strict=True):
            assert row.status is JobStatus.PROCESSING and row.worker_id == worker
            job.status = JobStatus.PROCESSING
            job.worker = worker
            job.started_at = self.now
            job.lease_expires_at = self.now + timedelta(seconds=self.settings.lease_seconds)

    @precondition(lambda self: self.running())
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        worker = self.pick_worker(data)
        ids = self.pick_ids(data, worker)
        owned = [self.jobs[i] for i in ids if i in self.jobs and self.jobs[i].owned_by(worker)]
        answer = self.run(self.queue.heartbeat(worker, ids))
        assert answer == {j.id: j.cancel_requested for j in owned}
        for job in owned:
            job.lease_expires_at = self.now + timedelta(seconds=self.settings.lease_seconds)

    @rule(seconds=st.sampled_from([1, 5, 15, 31, 45, 121]), rescuer_runs=st.booleans())
    def time_passes(self, seconds: int, rescuer_runs: bool) -> None:
        """The clock moves (sometimes past a lease or the hard timeout); the rescuer may run."""
        self.clock.advance(seconds)
        if rescuer_runs:
            self.rescue()

    def rescue(self) -> None:
        """Lapsed leases and jobs past the hard timeout go back, or fail on their last attempt."""
        deadline = self.now - timedelta(seconds=self.settings.job_timeout_seconds)
        lapsed = [
            j
            for j in self.jobs.values()
            if j.status is JobStatus.PROCESSING
            and (
                (j.lease_expires_at is not None and j.lease_expires_at < self.now)
                or (j.started_at is not None and j.started_at < deadline)
            )
        ]
        exhausted = {j.id for j in lapsed if j.retry_count + 1 >= self.settings.max_attempts}
        # A job whose cancellation was requested is cancelled, never requeued.
        cancelled = {j.id for j in lapsed if j.cancel_requested} - exhausted
        report = self.run(self.queue.rescue())
        assert set(report.failed) == exhausted
        assert set(report.cancelled) == cancelled
        assert set(report.requeued) == {j.id for j in lapsed} - exhausted - cancelled
        for job in lapsed:
            job.retry_count += 1
            if job.id in exhausted:
                self._finish(job, JobStatus.FAILED, error=True)
            elif job.id in cancelled:
                self._finish(job, JobStatus.CANCELLED, error=True)
            else:
                job.requeue(self.now)
                job.has_error = True

    # The rules a worker drives draw their arguments inside: Hypothesis tries rules with fewer
    # arguments first and most often, and these should not come last.
    @precondition(lambda self: self.running())
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        if data.draw(st.booleans(), label="batch"):
            worker = self.pick_worker(data)
            ids = self.pick_ids(data, worker)
            owned = {i for i in ids if i in self.jobs and self.jobs[i].owned_by(worker)}
            assert set(self.run(self.queue.complete_many(worker, ids))) == owned
            for job_id in owned:
                self._finish(self.jobs[job_id], JobStatus.COMPLETED, error=False)
            return
        job = self.pick_running(data)
        done = self.run(self.queue.complete(job.id, str(job.worker)))
        assert done.status is JobStatus.COMPLETED
        self._finish(job, JobStatus.COMPLETED, error=False)

    @precondition(lambda self: self.running())
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        job = self.pick_running(data)
        retryable = data.draw(st.booleans(), label="retryable")
        retry_after = data.draw(st.sampled_from([None, 0, 60]), label="retry_after")
        count_attempt = data.draw(st.booleans(), label="count_attempt")
        result = self.run(
            self.queue.fail(
                job.id,
                str(job.worker),
                "Shopify answered 503",
                retryable=retryable,
                retry_after=retry_after,
                count_attempt=count_attempt,
            )
        )
        attempts = job.retry_count + (1 if count_attempt else 0)
        job.retry_count = attempts
        if retryable and attempts < self.settings.max_attempts and job.cancel_requested:
            assert result.status is JobStatus.CANCELLED
            self._finish(job, JobStatus.CANCELLED, error=True)
        elif retryable and attempts < self.settings.max_attempts:
            delay = (result.run_after - self.now).total_seconds()
            if retry_after is not None:
                assert delay == retry_after
            else:
                base = min(
                    self.settings.retry_max_seconds,
                    self.settings.retry_base_seconds * 2 ** max(0, attempts - 1),
                )
                assert 0.5 * base <= delay <= 1.5 * base
            assert result.status is JobStatus.QUEUED
            job.requeue(result.run_after)
            job.has_error = True
        else:
            assert result.status is JobStatus.FAILED
            self._finish(job, JobStatus.FAILED, error=True)

    @precondition(lambda self: self.running())
    @rule(data=st.data())
    def mark_cancelled(self, data: st.DataObject) -> None:
        job = self.pick_running(data)
        stopped = self.run(self.queue.mark_cancelled(job.id, str(job.worker)))
        assert stopped.status is JobStatus.CANCELLED
        self._finish(job, JobStatus.CANCELLED, error=True)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), operation=st.sampled_from(["complete", "fail", "mark_cancelled"]))
    def act_without_holding_the_job(self, data: st.DataObject, operation: str) -> None:
        """A worker that does not hold the job (any more) may not finish it."""
        job_id = self.pick_job(data, JobStatus.PROCESSING)
        job = self.jobs.get(job_id)
        owner = job.worker if job is not None and job.status is JobStatus.PROCESSING else None
        worker = data.draw(st.sampled_from([w for w in WORKERS if w != owner]), label="worker")
        actions: dict[str, Callable[[], Awaitable[Any]]] = {
            "complete": lambda: self.queue.complete(job_id, worker),
            "fail": lambda: self.queue.fail(job_id, worker, "late", retryable=True),
            "mark_cancelled": lambda: self.queue.mark_cancelled(job_id, worker),
        }
        self.refused(LostJobError, actions[operation])

    # The operator's two actions share one rule, so that cancelling does not crowd out the rest.
    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), action=st.sampled_from(["cancel", "retry"]))
    def operator_acts(self, data: st.DataObject, action: str) -> None:
        if action == "cancel":
            self.cancel(self.pick_job(data, JobStatus.PROCESSING))
        else:
            self.retry(self.pick_job(data, JobStatus.FAILED, JobStatus.CANCELLED))

    def cancel(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            self.refused(NotFoundError, lambda: self.queue.cancel(job_id))
        elif job.status in FINISHED:
            self.refused(InvalidStateError, lambda: self.queue.cancel(job_id))
        elif job.status is JobStatus.QUEUED:
            assert self.run(self.queue.cancel(job_id)).status is JobStatus.CANCELLED
            self._finish(job, JobStatus.CANCELLED, error=True)
        else:
            answer = self.run(self.queue.cancel(job_id))
            assert answer.status is JobStatus.PROCESSING and answer.cancel_requested
            job.cancel_requested = True

    def retry(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            self.refused(NotFoundError, lambda: self.queue.retry(job_id))
            return
        twin = any(
            j.store == job.store and j.period == job.period and j.status in ACTIVE
            for j in self.jobs.values()
        )
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED) or twin:
            self.refused(InvalidStateError, lambda: self.queue.retry(job_id))
            return
        assert self.run(self.queue.retry(job_id)).status is JobStatus.QUEUED
        job.requeue(self.now)
        job.queued_at = self.now
        job.retry_count = 0
        job.completed_at = None
        job.cancel_requested = False
        job.has_error = False

    @precondition(lambda self: self.running())
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        worker = self.pick_worker(data)
        ids = self.pick_ids(data, worker)
        owned = {i for i in ids if i in self.jobs and self.jobs[i].owned_by(worker)}
        released = self.run(self.queue.release(worker, ids, "worker shutting down"))
        assert set(released) == owned
        for job_id in owned:
            job = self.jobs[job_id]
            if job.cancel_requested:
                self._finish(job, JobStatus.CANCELLED, error=True)
            else:
                job.requeue(self.now)

    def _finish(self, job: ModelJob, status: JobStatus, *, error: bool) -> None:
        job.status = status
        job.completed_at = self.now
        job.lease_expires_at = None
        job.has_error = error

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def database_agrees_with_the_model_and_the_rules(self) -> None:
        rows, _ = self.run(self._snapshot(events=False))
        processing = [r for r in rows if r.status is JobStatus.PROCESSING]
        assert len(processing) <= self.settings.max_concurrent_jobs
        assert max(Counter(r.store_id for r in processing).values(), default=0) <= 1
        active = Counter((r.store_id, r.period) for r in rows if r.status in ACTIVE)
        assert max(active.values(), default=0) <= 1
        for row in rows:
            assert 0 <= row.retry_count <= self.settings.max_attempts
            if row.status is JobStatus.FAILED:
                assert row.error_message
            if row.status in FINISHED:
                assert row.completed_at is not None
                assert row.lease_expires_at is None
            if row.status is JobStatus.PROCESSING:
                assert row.worker_id and row.started_at and row.lease_expires_at
            if row.status is JobStatus.QUEUED:
                assert row.worker_id is None and row.lease_expires_at is None

        assert {r.id for r in rows} == set(self.jobs)
        for row in rows:
            job = self.jobs[row.id]
            seen = (
                row.status,
                row.store_id,
                (row.period_start, row.period_end),
                row.priority,
                row.retry_count,
                row.worker_id,
                row.queued_at,
                row.run_after,
                row.started_at,
                row.lease_expires_at,
                row.completed_at,
                row.cancel_requested,
                row.error_message is not None,
            )
            wanted = (
                job.status,
                job.store,
                job.period,
                job.priority,
                job.retry_count,
                job.worker,
                job.queued_at,
                job.run_after,
                job.started_at,
                job.lease_expires_at,
                job.completed_at,
                job.cancel_requested,
                job.has_error,
            )
            assert seen == wanted, f"job {row.id}"


async def _add_stores(url: str, data_dir: Path) -> dict[int, str]:
    """Three stores: two of account ``a``, one of account ``b`` (store id → account)."""
    config = Settings(database_url=url, data_dir=data_dir, secret_key="test-secret-key")  # type: ignore[arg-type]
    database = connect(config)
    try:
        directory = StoreDirectory(database, SecretBox.from_settings(config))
        names = {1: "a", 2: "a", 3: "b"}
        return {await add_store(directory, n, account=names[n]): names[n] for n in names}
    finally:
        await database.dispose()


# Passing runs take well under a minute per database; a failing one spends up to five more
# minutes (Hypothesis's cap) shrinking the steps to a short reproduction before it reports.
@pytest.mark.timeout(600)
def test_job_life_cycle(db_url: str, tmp_path: Path) -> None:
    class Machine(JobLifeCycle):
        url = db_url
        data_dir = tmp_path
        accounts = asyncio.run(_add_stores(db_url, tmp_path))

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=50,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

"""The durable job queue: every database operation on ``sync_queue`` lives here.

Guarantees, and what provides each:

- **De-duplication.** A partial unique index allows one queued-or-processing job per store and
  period; enqueue inserts with ``ON CONFLICT DO NOTHING`` and returns the existing job when it
  loses, so concurrent callers on any number of processes get one job.
- **One job per store.** A second partial unique index allows one processing job per store;
  claims also skip stores that have one, so the index is a safety net, not a source of errors.
- **Global limit.** A claim counts processing jobs and takes at most the free slots, inside a
  transaction that claimers cannot run concurrently: PostgreSQL takes a transaction-level
  advisory lock (and still locks the chosen rows with ``FOR UPDATE SKIP LOCKED`` so that a
  concurrent cancel is never overwritten); SQLite's ``BEGIN IMMEDIATE`` holds its one write lock.
- **Order.** Highest effective priority first (priority plus a point per
  ``priority_aging_seconds`` of waiting), then oldest, then lowest id.
- **Leases.** A claim leases the job for ``lease_seconds``; the worker renews it by heartbeat.
  :meth:`JobQueue.rescue` takes back jobs whose lease lapsed or that ran past the hard timeout.
- **Atomic completion.** :meth:`JobQueue.complete` runs the caller's writes (cache rows) and the
  status change in one transaction, and only while the caller still owns the job.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync.errors import InputError, InvalidStateError, NotFoundError
from storesync.periods import Period
from storesync.queue.jobs import (
    ACTIVE,
    FINISHED,
    Enqueued,
    Job,
    JobStatus,
    Priority,
    Reason,
    RescueReport,
)
from storesync.queue.sql import instant, seconds_between
from storesync.settings import Settings
from storesync.storage.engine import Database
from storesync.storage.events import publish
from storesync.storage.models import JobEvent, Store, SyncJob, table_of

JOBS = table_of(SyncJob)
EVENTS = table_of(JobEvent)
STORES = table_of(Store)

#: Advisory lock key serialising claims on PostgreSQL (any constant unique to storesync).
CLAIM_LOCK = 0x5702E5D

Clock = Callable[[], datetime]
ResultWriter = Callable[[AsyncConnection], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


class LostJobError(InvalidStateError):
    """The worker no longer owns the job (its lease lapsed and it was rescued, or cancelled)."""


class JobQueue:
    """The queue's API. One instance per process is enough; it holds no per-job state."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    # -- enqueue ---------------------------------------------------------------------------

    async def enqueue(
        self,
        store_id: int,
        start: date,
        end: date,
        *,
        reason: Reason = Reason.USER,
        priority: int | None = None,
        run_after: datetime | None = None,
        force: bool = False,
    ) -> Enqueued:
        """Queue a sync of ``store_id`` for ``start..end``, or return the active one.

        When a queued or processing job exists for the same store and period, that job is
        returned (``created=False``); if the new request has a higher priority the waiting job
        is raised to it, so a user's request overtakes a scheduled refresh of the same period.
        """
        period = Period.checked(start, end, max_days=self.settings.max_period_days)
        wanted = int(Priority.for_reason(reason)) if priority is None else priority
        now = self.clock()
        values = {
            "store_id": store_id,
            "status": JobStatus.QUEUED.value,
            "priority": wanted,
            "reason": Reason(reason).value,
            "period_start": period.start,
            "period_end": period.end,
            "force": force,
            "retry_count": 0,
            "queued_at": now,
            "run_after": run_after or now,
        }
        for _ in range(5):
            try:
                async with self.database.transaction() as conn:
                    row = (await conn.execute(self._insert_if_absent(values))).mappings().first()
                    if row is not None:
                        job = Job.from_row(row)
                        note = f"queued by {job.reason.value}"
                        await _record(conn, [job.id], now, "queued", note)
                        await _announce(conn, "job.queued", [job])
                        return Enqueued(job, created=True)
                    existing = await self._raise_active(conn, store_id, period, wanted, force)
                    if existing is not None:
                        return Enqueued(existing, created=False)
            except IntegrityError:
                # Duplicates never raise (ON CONFLICT DO NOTHING): this is the foreign key.
                raise NotFoundError(f"store {store_id} does not exist") from None
            # The active job finished between our insert and our read: insert again.
        raise InvalidStateError("could not enqueue: the job kept changing state; try again")

    def _insert_if_absent(self, values: dict[str, Any]) -> Any:
        # Literal SQL, exactly as the index says: PostgreSQL matches the partial index by its
        # predicate, and a bound parameter in its place would not match.
        where = text("status IN ('queued', 'processing')")
        columns = ["store_id", "period_start", "period_end"]
        if self.database.is_postgres:
            return (
                postgresql.insert(JOBS)
                .values(values)
                .on_conflict_do_nothing(index_elements=columns, index_where=where)
                .returning(*JOBS.c)
            )
        return (
            sqlite.insert(JOBS)
            .values(values)
            .on_conflict_do_nothing(index_elements=columns, index_where=where)
            .returning(*JOBS.c)
        )

    async def _raise_active(
        self, conn: AsyncConnection, store_id: int, period: Period, priority: int, force: bool
    ) -> Job | None:
        active = and_(
            JOBS.c.store_id == store_id,
            JOBS.c.period_start == period.start,
            JOBS.c.period_end == period.end,
            JOBS.c.status.in_([s.value for s in ACTIVE]),
        )
        row = await _update(
            conn,
            update(JOBS)
            .where(active)
            .values(
                priority=func.max(JOBS.c.priority, priority)
                if self.database.is_sqlite
                else func.greatest(JOBS.c.priority, priority),
                force=True if force else JOBS.c.force,
            ),
        )
        return row

    # -- claim -----------------------------------------------------------------------------

    async def claim(self, worker_id: str, limit: int = 1, *, only: int | None = None) -> list[Job]:
        """Claim up to ``limit`` jobs for ``worker_id``, within the global limit.

        Returns the claimed jobs, best first; an empty list when nothing is due or every
        slot is taken. ``only`` restricts the claim to one job id (``storesync sync --inline``).
        """
        if limit < 1:
            return []
        now = self.clock()
        async with self.database.transaction(immediate=True) as conn:
            if self.database.is_postgres:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            processing = await conn.scalar(
                select(func.count()).where(JOBS.c.status == JobStatus.PROCESSING.value)
            )
            free = self.settings.max_concurrent_jobs - int(processing or 0)
            if free <= 0:
                return []
            ids = self._choose(now, min(limit, free), only)
            lease_until = now + timedelta(seconds=self.settings.lease_seconds)
            rows = await _update_all(
                conn,
                update(JOBS)
                # Re-checked on the row's newest version: a job cancelled after the
                # choice was made is left alone.
                .where(JOBS.c.id.in_(ids), JOBS.c.status == JobStatus.QUEUED.value)
                .values(
                    status=JobStatus.PROCESSING.value,
                    started_at=now,
                    heartbeat_at=now,
                    lease_expires_at=lease_until,
                    worker_id=worker_id,
                ),
            )
            jobs = sorted(rows, key=self._rank_key(now))
            if jobs:
                await _record(conn, [j.id for j in jobs], now, "claimed", f"claimed by {worker_id}")
                await _announce(conn, "job.started", jobs)
            return jobs

    def _effective_priority(self, now: datetime) -> Any:
        age = seconds_between(self.database.dialect, instant("now", now), JOBS.c.queued_at)
        return JOBS.c.priority + age / self.settings.priority_aging_seconds

    def _rank_key(self, now: datetime) -> Callable[[Job], tuple[float, datetime, int]]:
        aging = self.settings.priority_aging_seconds

        def key(job: Job) -> tuple[float, datetime, int]:
            waited = (now - job.queued_at).total_seconds()
            return (-(job.priority + waited / aging), job.queued_at, job.id)

        return key

    def _choose(self, now: datetime, count: int, only: int | None = None) -> Any:
        """The ids of the next ``count`` claimable jobs, at most one per store."""
        effective = self._effective_priority(now).label("effective")
        busy_stores = select(JOBS.c.store_id).where(JOBS.c.status == JobStatus.PROCESSING.value)
        ranked = (
            select(
                JOBS.c.id,
                JOBS.c.queued_at,
                effective,
                func.row_number()
                .over(
                    partition_by=JOBS.c.store_id,
                    order_by=(effective.desc(), JOBS.c.queued_at, JOBS.c.id),
                )
                .label("store_rank"),
            )
            .where(
                JOBS.c.status == JobStatus.QUEUED.value,
                JOBS.c.run_after <= instant("now_due", now),
                JOBS.c.store_id.not_in(busy_stores),
                *([JOBS.c.id == only] if only is not None else []),
            )
            .subquery()
        )
        best = (
            select(ranked.c.id)
            .where(ranked.c.store_rank == 1)
            .order_by(ranked.c.effective.desc(), ranked.c.queued_at, ranked.c.id)
            .limit(count)
        )
        if self.database.is_postgres:
            # Lock the chosen rows, skipping any that a cancel or retry holds right now.
            return (
                select(JOBS.c.id)
                .where(
                    JOBS.c.id.in_(best.scalar_subquery()),
                    JOBS.c.status == JobStatus.QUEUED.value,
                )
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
        return best.scalar_subquery()

    # -- leases ----------------------------------------------------------------------------

    async def heartbeat(self, worker_id: str, job_ids: Sequence[int]) -> dict[int, bool]:
        """Renew the leases of ``job_ids``; returns ``{job_id: cancel_requested}`` for the
        jobs this worker still owns. A job missing from the answer was taken back: stop it.
        """
        if not job_ids:
            return {}
        now = self.clock()
        async with self.database.transaction() as conn:
            rows = await conn.execute(
                update(JOBS)
                .where(self._owned_any(job_ids, worker_id))
                .values(
                    heartbeat_at=now,
                    lease_expires_at=now + timedelta(seconds=self.settings.lease_seconds),
                )
                .returning(JOBS.c.id, JOBS.c.cancel_requested)
            )
            return {int(r.id): bool(r.cancel_requested) for r in rows}

    async def rescue(self) -> RescueReport:
        """Take back processing jobs whose lease lapsed or that passed the hard timeout.

        Each counts as an attempt: it goes back to the queue, or fails when it has used all
        of ``max_attempts``.
        """
        now = self.clock()
        timeout = timedelta(seconds=self.settings.job_timeout_seconds)
        lapsed = and_(
            JOBS.c.status == JobStatus.PROCESSING.value,
            or_(
                JOBS.c.lease_expires_at < instant("now", now),
                JOBS.c.started_at < instant("deadline", now - timeout),
            ),
        )
        exhausted = JOBS.c.retry_count + 1 >= self.settings.max_attempts
        reason = (
            f"the worker stopped responding (no heartbeat for {self.settings.lease_seconds:g} s) "
            f"or the job ran past the {self.settings.job_timeout_seconds:g} s timeout"
        )
        async with self.database.transaction(immediate=True) as conn:
            failed_jobs = await _update_all(
                conn,
                update(JOBS)
                .where(lapsed, exhausted)
                .values(
                    status=JobStatus.FAILED.value,
                    retry_count=JOBS.c.retry_count + 1,
                    completed_at=now,
                    lease_expires_at=None,
                    error_message=f"gave up after {self.settings.max_attempts} attempts: {reason}",
                ),
            )
            failed_ids = tuple(sorted(j.id for j in failed_jobs))
            cancelled_jobs = await _update_all(
                conn,
                update(JOBS)
                .where(lapsed, JOBS.c.cancel_requested)
                .values(
                    status=JobStatus.CANCELLED.value,
                    retry_count=JOBS.c.retry_count + 1,
                    completed_at=now,
                    lease_expires_at=None,
                    error_message=f"cancelled: {reason}",
                ),
            )
            cancelled_ids = tuple(sorted(j.id for j in cancelled_jobs))
            requeued_jobs = await _update_all(
                conn,
                update(JOBS)
                .where(lapsed)
                .values(
                    status=JobStatus.QUEUED.value,
                    retry_count=JOBS.c.retry_count + 1,
                    run_after=now,
                    started_at=None,
                    heartbeat_at=None,
                    lease_expires_at=None,
                    worker_id=None,
                    error_message=reason,
                ),
            )
            requeued_ids = tuple(sorted(j.id for j in requeued_jobs))
            await _record(conn, failed_ids, now, "failed", reason)
            await _record(conn, requeued_ids, now, "rescued", reason)
            await _record(conn, cancelled_ids, now, "cancelled", f"cancelled: {reason}")
            await _announce(conn, "job.cancelled", cancelled_jobs)
            await _announce(conn, "job.failed", failed_jobs)
            await _announce(conn, "job.queued", requeued_jobs)
        return RescueReport(requeued=requeued_ids, failed=failed_ids, cancelled=cancelled_ids)

    # -- finishing -------------------------------------------------------------------------

    async def complete(
        self,
        job_id: int,
        worker_id: str,
        write_results: ResultWriter | None = None,
        *,
        progress: dict[str, Any] | None = None,
    ) -> Job:
        """Mark the job completed and run ``write_results`` in the same transaction.

        Raises :class:`LostJobError` (and writes nothing) when the worker no longer owns it.
        """
        now = self.clock()
        async with self.database.transaction() as conn:
            values: dict[str, Any] = {
                "status": JobStatus.COMPLETED.value,
                "completed_at": now,
                "lease_expires_at": None,
                "error_message": None,
            }
            if progress is not None:
                values["progress"] = progress
            row = await _update(
                conn,
                update(JOBS).where(self._owned(job_id, worker_id)).values(values),
            )
            if row is None:
                raise LostJobError(f"job {job_id} is no longer held by worker {worker_id}")
            job = row
            if write_results is not None:
                await write_results(conn)
                await _announce(conn, "cache.updated", [job])
            await _record(conn, [job_id], now, "completed", "completed")
            await _announce(conn, "job.completed", [job])
            return job

    async def complete_many(self, worker_id: str, job_ids: Sequence[int]) -> list[int]:
        """Mark several jobs completed in one statement (jobs with nothing to write)."""
        if not job_ids:
            return []
        now = self.clock()
        async with self.database.transaction() as conn:
            jobs = await _update_all(
                conn,
                update(JOBS)
                .where(self._owned_any(job_ids, worker_id))
                .values(
                    status=JobStatus.COMPLETED.value,
                    completed_at=now,
                    lease_expires_at=None,
                    error_message=None,
                ),
            )
            await _record(conn, [j.id for j in jobs], now, "completed", "completed")
            await _announce(conn, "job.completed", jobs)
            return [j.id for j in jobs]

    async def fail(
        self,
        job_id: int,
        worker_id: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        retry_at: datetime | None = None,
        count_attempt: bool = True,
        write_results: ResultWriter | None = None,
    ) -> Job:
        """Record a failed attempt.

        A retryable failure goes back to the queue after an exponential backoff with jitter
        (or after the provider's hint, ``retry_after`` seconds or ``retry_at``, when given),
        unless it was the last allowed attempt. A permanent failure fails the job at once.
        ``count_attempt=False`` is for deferrals (a spent daily budget): the job waits
        without using up an attempt. ``write_results`` runs in the same transaction, for the
        valid part of a partly failed sync.
        """
        now = self.clock()
        async with self.database.transaction() as conn:
            job = await self._owned_job(conn, job_id, worker_id)
            attempts = job.retry_count + (1 if count_attempt else 0)
            values: dict[str, Any]
            if retryable and attempts < self.settings.max_attempts and job.cancel_requested:
                # Someone asked to cancel it: never put it back in the queue.
                values = {
                    "status": JobStatus.CANCELLED.value,
                    "retry_count": attempts,
                    "completed_at": now,
                    "lease_expires_at": None,
                    "error_message": f"cancelled after a failed attempt: {message}",
                }
                kind, note = "cancelled", values["error_message"]
            elif retryable and attempts < self.settings.max_attempts:
                delay = self._backoff(attempts, retry_after, retry_at, now)
                values = {
                    "status": JobStatus.QUEUED.value,
                    "retry_count": attempts,
                    "run_after": now + timedelta(seconds=delay),
                    "started_at": None,
                    "heartbeat_at": None,
                    "lease_expires_at": None,
                    "worker_id": None,
                    "error_message": message,
                }
                kind, note = "retried", f"{message} (retry in {delay:.1f} s)"
            else:
                if retryable:
                    message = f"gave up after {attempts} attempts: {message}"
                values = {
                    "status": JobStatus.FAILED.value,
                    "retry_count": attempts,
                    "completed_at": now,
                    "lease_expires_at": None,
                    "error_message": message,
                }
                kind, note = "failed", message
            row = await _update(
                conn,
                update(JOBS)
                # Still ours? A rescue may have taken it back since we read it.
                .where(self._owned(job_id, worker_id), JOBS.c.retry_count == job.retry_count)
                .values(values),
            )
            if row is None:
                raise LostJobError(f"job {job_id} is no longer held by worker {worker_id}")
            failed_job = row
            if write_results is not None:
                await write_results(conn)
                await _announce(conn, "cache.updated", [failed_job])
            await _record(conn, [job_id], now, kind, note)
            await _announce(conn, f"job.{kind}", [failed_job])
            return failed_job

    def _backoff(
        self, attempts: int, retry_after: float | None, retry_at: datetime | None, now: datetime
    ) -> float:
        if retry_at is not None:
            return max(0.0, (retry_at - now).total_seconds())
        if retry_after is not None:
            return max(0.0, float(retry_after))
        base = self.settings.retry_base_seconds * 2.0 ** max(0, attempts - 1)
        capped = min(self.settings.retry_max_seconds, base)
        return float(capped * self._rng.uniform(0.5, 1.5))

    async def release(self, worker_id: str, job_ids: Sequence[int], note: str) -> list[int]:
        """Hand jobs back to the queue without counting an attempt (a graceful shutdown).

        A job whose cancellation was requested is cancelled instead. Returns the ids of the
        jobs that left the worker.
        """
        if not job_ids:
            return []
        now = self.clock()
        owned = self._owned_any(job_ids, worker_id)
        async with self.database.transaction() as conn:
            cancelled = await _update_all(
                conn,
                update(JOBS)
                .where(owned, JOBS.c.cancel_requested)
                .values(
                    status=JobStatus.CANCELLED.value,
                    completed_at=now,
                    lease_expires_at=None,
                    error_message="cancelled while running",
                ),
            )
            released = await _update_all(
                conn,
                update(JOBS)
                .where(owned)
                .values(
                    status=JobStatus.QUEUED.value,
                    run_after=now,
                    started_at=None,
                    heartbeat_at=None,
                    lease_expires_at=None,
                    worker_id=None,
                ),
            )
            await _record(
                conn, [j.id for j in cancelled], now, "cancelled", "cancelled while running"
            )
            await _record(conn, [j.id for j in released], now, "released", note)
            await _announce(conn, "job.cancelled", cancelled)
            await _announce(conn, "job.queued", released)
            return [j.id for j in (*cancelled, *released)]

    async def set_progress(self, job_id: int, worker_id: str, progress: dict[str, Any]) -> None:
        """Store the job's progress (and checkpoint); raises :class:`LostJobError` if not owned."""
        async with self.database.transaction() as conn:
            row = await _update(
                conn,
                update(JOBS).where(self._owned(job_id, worker_id)).values(progress=progress),
            )
            if row is None:
                raise LostJobError(f"job {job_id} is no longer held by worker {worker_id}")
            await _announce(conn, "job.progress", [row])

    def _owned_any(self, job_ids: Sequence[int], worker_id: str) -> Any:
        return and_(
            JOBS.c.id.in_(list(job_ids)),
            JOBS.c.worker_id == worker_id,
            JOBS.c.status == JobStatus.PROCESSING.value,
        )

    def _owned(self, job_id: int, worker_id: str) -> Any:
        return and_(
            JOBS.c.id == job_id,
            JOBS.c.worker_id == worker_id,
            JOBS.c.status == JobStatus.PROCESSING.value,
        )

    async def _owned_job(self, conn: AsyncConnection, job_id: int, worker_id: str) -> Job:
        query = select(JOBS).where(self._owned(job_id, worker_id))
        if self.database.is_postgres:
            query = query.with_for_update()
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise LostJobError(f"job {job_id} is no longer held by worker {worker_id}")
        return Job.from_row(row)

    # -- operator actions ------------------------------------------------------------------

    async def cancel(self, job_id: int) -> Job:
        """Cancel a queued job now, or ask the worker running it to stop."""
        now = self.clock()
        async with self.database.transaction(immediate=True) as conn:
            job = await self._get(conn, job_id, lock=True)
            if job.status == JobStatus.QUEUED:
                values: dict[str, Any] = {
                    "status": JobStatus.CANCELLED.value,
                    "completed_at": now,
                    "error_message": "cancelled before it started",
                }
                note = "cancelled while queued"
            elif job.status == JobStatus.PROCESSING:
                values = {"cancel_requested": True}
                note = "cancellation requested; the worker stops at its next check"
            else:
                raise InvalidStateError(
                    f"job {job_id} is already {job.status.value}; "
                    "only queued or processing jobs can be cancelled"
                )
            row = await _update(conn, update(JOBS).where(JOBS.c.id == job_id).values(values))
            await _record(conn, [job_id], now, "cancel", note)
            assert row is not None  # locked above: it cannot have gone
            changed = row
            await _announce(conn, f"job.{changed.status.value}", [changed])
            return changed

    async def mark_cancelled(self, job_id: int, worker_id: str) -> Job:
        """The worker stopped a job whose cancellation was requested."""
        now = self.clock()
        async with self.database.transaction() as conn:
            row = await _update(
                conn,
                update(JOBS)
                .where(self._owned(job_id, worker_id))
                .values(
                    status=JobStatus.CANCELLED.value,
                    completed_at=now,
                    lease_expires_at=None,
                    error_message="cancelled while running",
                ),
            )
            if row is None:
                raise LostJobError(f"job {job_id} is no longer held by worker {worker_id}")
            await _record(conn, [job_id], now, "cancelled", "cancelled while running")
            stopped = row
            await _announce(conn, "job.cancelled", [stopped])
            return stopped

    async def retry(self, job_id: int) -> Job:
        """Queue a failed or cancelled job again, with its attempts reset."""
        now = self.clock()
        async with self.database.transaction(immediate=True) as conn:
            job = await self._get(conn, job_id, lock=True)
            if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
                raise InvalidStateError(
                    f"job {job_id} is {job.status.value}; "
                    "only failed or cancelled jobs can be retried"
                )
            twin = await conn.scalar(
                select(JOBS.c.id).where(
                    JOBS.c.store_id == job.store_id,
                    JOBS.c.period_start == job.period_start,
                    JOBS.c.period_end == job.period_end,
                    JOBS.c.status.in_([s.value for s in ACTIVE]),
                )
            )
            if twin is not None:
                raise InvalidStateError(
                    f"job {twin} already syncs store {job.store_id} for {job.period}; "
                    "follow that one instead"
                )
            row = await _update(
                conn,
                update(JOBS)
                .where(JOBS.c.id == job_id)
                .values(
                    status=JobStatus.QUEUED.value,
                    retry_count=0,
                    run_after=now,
                    queued_at=now,
                    started_at=None,
                    completed_at=None,
                    worker_id=None,
                    cancel_requested=False,
                    error_message=None,
                ),
            )
            await _record(conn, [job_id], now, "queued", "queued again by retry")
            assert row is not None  # locked above: it cannot have gone
            again = row
            await _announce(conn, "job.queued", [again])
            return again

    async def prune(self, older_than_days: float) -> int:
        """Delete finished jobs (and their event logs) finished more than N days ago."""
        if older_than_days < 0:
            raise InputError("older_than_days must not be negative")
        cutoff = self.clock() - timedelta(days=older_than_days)
        async with self.database.transaction() as conn:
            doomed = select(JOBS.c.id).where(
                JOBS.c.status.in_([s.value for s in FINISHED]),
                JOBS.c.completed_at < instant("cutoff", cutoff),
            )
            await conn.execute(delete(EVENTS).where(EVENTS.c.job_id.in_(doomed)))
            result = await conn.execute(delete(JOBS).where(JOBS.c.id.in_(doomed)))
            return int(result.rowcount)

    # -- reads -----------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job:
        async with self.database.read() as conn:
            return await self._get(conn, job_id)

    async def _get(self, conn: AsyncConnection, job_id: int, *, lock: bool = False) -> Job:
        query = select(JOBS).where(JOBS.c.id == job_id)
        if lock and self.database.is_postgres:
            query = query.with_for_update()
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFoundError(f"job {job_id} does not exist")
        return Job.from_row(row)

    async def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        store_id: int | None = None,
        account_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Job]:
        """Jobs, newest first, filtered by status, store and owning account."""
        query = select(JOBS).order_by(JOBS.c.queued_at.desc(), JOBS.c.id.desc())
        if status is not None:
            query = query.where(JOBS.c.status == JobStatus(status).value)
        if store_id is not None:
            query = query.where(JOBS.c.store_id == store_id)
        if account_id is not None:
            query = query.where(
                JOBS.c.store_id.in_(select(STORES.c.id).where(STORES.c.account_id == account_id))
            )
        async with self.database.read() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).mappings().all()
        return [Job.from_row(r) for r in rows]

    async def count_due(self) -> int:
        """Queued jobs whose ``run_after`` has come (what ``worker --once`` waits for)."""
        async with self.database.read() as conn:
            found = await conn.scalar(
                select(func.count()).where(
                    JOBS.c.status == JobStatus.QUEUED.value,
                    JOBS.c.run_after <= instant("now", self.clock()),
                )
            )
        return int(found or 0)

    async def events(self, job_id: int) -> list[dict[str, Any]]:
        """The job's event log, oldest first."""
        async with self.database.read() as conn:
            await self._get(conn, job_id)
            rows = (
                await conn.execute(
                    select(EVENTS.c.at, EVENTS.c.kind, EVENTS.c.message, EVENTS.c.data)
                    .where(EVENTS.c.job_id == job_id)
                    .order_by(EVENTS.c.id)
                )
            ).mappings()
            return [dict(r) for r in rows]

    async def record(
        self, job_id: int, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        """Append one line to a job's event log."""
        async with self.database.transaction() as conn:
            await _record(conn, [job_id], self.clock(), kind, message, data)


async def _update(conn: AsyncConnection, statement: Any) -> Job | None:
    """Run an ``UPDATE sync_queue`` and return the (first) changed job, or None."""
    jobs = await _update_all(conn, statement)
    return jobs[0] if jobs else None


async def _update_all(conn: AsyncConnection, statement: Any) -> list[Job]:
    """Run an ``UPDATE sync_queue`` and return every changed job."""
    result = await conn.execute(statement.returning(*JOBS.c))
    return [Job.from_row(r) for r in result.mappings()]


async def _record(
    conn: AsyncConnection,
    job_ids: Sequence[int],
    at: datetime,
    kind: str,
    message: str,
    data: dict[str, Any] | None = None,
) -> None:
    if not job_ids:
        return
    await conn.execute(
        insert(EVENTS),
        [{"job_id": j, "at": at, "kind": kind, "message": message, "data": data} for j in job_ids],
    )


async def _announce(conn: AsyncConnection, kind: str, jobs: Sequence[Job]) -> None:
    """Publish a change event per job (delivered at commit; see ``storage.events``)."""
    await publish(
        conn,
        *(
            {
                "type": kind,
                "job_id": job.id,
                "store_id": job.store_id,
                "status": job.status.value,
                "period_start": job.period_start.isoformat(),
                "period_end": job.period_end.isoformat(),
                "percent": (job.progress or {}).get("percent"),
                "retry_count": job.retry_count,
                "error_message": job.error_message,
            }
            for job in jobs
        ),
    )

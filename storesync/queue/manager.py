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
- **Few round trips.** On PostgreSQL a change of jobs, their event-log lines and the change
  events are one statement (:mod:`storesync.queue.transitions`); enqueue and batch completion
  are one statement each, run without ``BEGIN`` and ``COMMIT``; the frequent statements are
  built once per :class:`JobQueue`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Insert, Update

from storesync.errors import InputError, InvalidStateError, NotFoundError
from storesync.periods import Period
from storesync.queue.fairness import (
    ACCOUNT_LOCK,
    AccountTurns,
    fair_order,
    queue_full,
    under_cap,
    users_active_statement,
)
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
from storesync.queue.reads import owned_by
from storesync.queue.sql import instant, seconds_between
from storesync.queue.transitions import (
    EVENTS,
    JOBS,
    LogLine,
    Transition,
    announce,
    change_jobs,
    write_log,
)
from storesync.settings import Settings
from storesync.storage.dialect import insert_ignoring_conflicts
from storesync.storage.engine import Database
from storesync.storage.types import UTCDateTime, is_storable_id

#: The time of the operation, in the statements built once (see ``Transition``).
_NOW = bindparam("now", type_=UTCDateTime)
_LEASE_UNTIL = bindparam("lease_until", type_=UTCDateTime)
#: The jobs of the ``ids`` parameter that the ``worker`` parameter still holds.
_HELD = and_(
    JOBS.c.id.in_(bindparam("ids", expanding=True)),
    JOBS.c.worker_id == bindparam("worker", type_=String),
    JOBS.c.status == JobStatus.PROCESSING.value,
)
_RENEW_LEASES = (
    update(JOBS)
    .where(_HELD)
    .values(heartbeat_at=_NOW, lease_expires_at=_LEASE_UNTIL)
    .returning(JOBS.c.id, JOBS.c.cancel_requested)
)
#: :meth:`JobQueue.enqueue`'s parameters, named after their columns.
_ENQUEUE_PARAMS = (
    "store_id",
    "priority",
    "reason",
    "period_start",
    "period_end",
    "force",
    "queued_at",
    "run_after",
)

#: Jobs per statement of :meth:`JobQueue.enqueue_many`: 10 parameters each, well under the
#: 32,767 a statement can have on either database.
ENQUEUE_MANY_ROWS = 500
#: The columns whose values differ between the jobs of one :meth:`JobQueue.enqueue_many` batch.
_BATCH_COLUMNS = ("store_id", "period_start", "period_end")

_JOB_ID = bindparam("job_id", type_=Integer)
#: Whether the job's log has a "changed" line (see :meth:`JobQueue.note_change`) after its
#: latest claim: a change noted on an earlier attempt was fetched by the next one.
_CHANGED_DURING_ATTEMPT = select(
    select(EVENTS.c.id)
    .where(
        EVENTS.c.job_id == _JOB_ID,
        EVENTS.c.kind == "changed",
        EVENTS.c.id
        > select(func.max(EVENTS.c.id))
        .where(EVENTS.c.job_id == _JOB_ID, EVENTS.c.kind == "claimed")
        .scalar_subquery(),
    )
    .exists()
)

#: Advisory lock key serialising claims on PostgreSQL (any constant unique to storesync).
CLAIM_LOCK = 0x5702E5D

_TAKE_CLAIM_LOCK = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=CLAIM_LOCK)

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
        # The frequent operations' statements, built once (see Transition for why).
        dialect = database.dialect
        self._insert_new = Transition(
            self._insert_if_absent(), dialect=dialect, log="queued", announce="job.queued"
        )
        self._raise_waiting = Transition(
            self._raise_active(), dialect=dialect, log=None, announce=None
        )
        self._claim_due = Transition(
            self._claim_statement(only=False),
            dialect=dialect,
            log="claimed",
            announce="job.started",
        )
        self._claim_one = Transition(
            self._claim_statement(only=True), dialect=dialect, log="claimed", announce="job.started"
        )
        self._complete_owned = Transition(
            update(JOBS)
            .where(_HELD)
            .values(
                status=JobStatus.COMPLETED.value,
                completed_at=_NOW,
                lease_expires_at=None,
                error_message=None,
            ),
            dialect=dialect,
            log="completed",
            announce="job.completed",
        )
        self._users_active = users_active_statement(max(1, settings.max_queued_jobs_per_account))
        self._turns = AccountTurns(database)
        if database.is_postgres:
            self._insert_batch = Transition(
                self._insert_arrays(), dialect=dialect, log="queued", announce="job.queued"
            )

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
        if not is_storable_id(store_id):  # the driver would refuse the number
            raise NotFoundError(f"store {store_id} does not exist")
        now = self.clock()
        values = self._new_job(store_id, period, reason, priority, run_after, now, force=force)
        message = f"queued by {Reason(reason).value}"
        for _ in range(5):
            try:
                async with self._enqueue_connection(store_id, reason) as conn:
                    created = await self._insert_new.run(conn, values, at=now, message=message)
                    if created:
                        return Enqueued(created[0], created=True)
                    existing = await self._raise_waiting.run(conn, values, at=now)
                    if existing:
                        return Enqueued(existing[0], created=False)
                    await self._refuse_over_cap(conn, store_id, reason)
            except IntegrityError:
                # Duplicates never raise (ON CONFLICT DO NOTHING): this is the foreign key.
                raise NotFoundError(f"store {store_id} does not exist") from None
            # The active job finished between our insert and our read: insert again.
        raise InvalidStateError("could not enqueue: the job kept changing state; try again")

    @contextlib.asynccontextmanager
    async def _enqueue_connection(
        self, store_id: int, reason: Reason
    ) -> AsyncIterator[AsyncConnection]:
        """Where :meth:`enqueue` runs its statements.

        Each is atomic on its own, so no transaction round trips are needed, but for a user's
        job under a cap on PostgreSQL: its count and insert must not race another request of
        the same account (each would see the count before the other's insert), so they run
        in a transaction holding the account's advisory lock. SQLite's statements already run
        in one ``BEGIN IMMEDIATE`` transaction. Requests of one account in this process wait
        for their turn before they take a connection (see ``AccountTurns``).
        """
        if not (self._capped(reason) and self.database.is_postgres):
            async with self.database.statements() as conn:
                yield conn
            return
        async with self._turns.turn(store_id), self.database.transaction() as conn:
            await conn.execute(ACCOUNT_LOCK, {"store_id": store_id})
            yield conn

    def _capped(self, reason: Reason) -> bool:
        """Whether a job queued for ``reason`` counts against its account's cap."""
        return bool(self.settings.max_queued_jobs_per_account) and Reason(reason) is Reason.USER

    async def enqueue_many(
        self, requests: Sequence[tuple[int, Period]], *, reason: Reason = Reason.SCHEDULE
    ) -> list[Job]:
        """Queue a sync for each ``(store_id, period)`` that has no active job; returns the
        jobs created (an active job is left as it is: not raised, unlike :meth:`enqueue`).

        For the scheduler's rounds, which queue thousands: on PostgreSQL one statement per
        :data:`ENQUEUE_MANY_ROWS` requests, its values sent as one array per column; on SQLite
        one transaction, :meth:`enqueue`'s statement run for each. The jobs are created in the
        order given, so jobs of one priority run in that order. A store that no longer exists
        is skipped. Each period must be valid (see :meth:`enqueue`); else nothing is queued.
        """
        wanted = list(
            dict.fromkeys(
                (store_id, Period.checked(p.start, p.end, max_days=self.settings.max_period_days))
                for store_id, p in requests
                if is_storable_id(store_id)  # else no such store: skipped, as a deleted one
            )
        )
        now = self.clock()
        message = f"queued by {Reason(reason).value}"
        created: list[Job] = []
        for first in range(0, len(wanted), ENQUEUE_MANY_ROWS):
            chunk = wanted[first : first + ENQUEUE_MANY_ROWS]
            rows = [self._new_job(store_id, p, reason, None, None, now) for store_id, p in chunk]
            try:
                async with self.database.statements() as conn:
                    if self.database.is_postgres:
                        columns = {
                            f"{name}s": [row[f"new_{name}"] for row in rows]
                            for name in _BATCH_COLUMNS
                        }
                        params = columns | {
                            "now": now,
                            "priority": rows[0]["new_priority"],
                            "reason": rows[0]["new_reason"],
                        }
                        created += await self._insert_batch.run(
                            conn, params, at=now, message=message
                        )
                    else:
                        for row in rows:
                            created += await self._insert_new.run(
                                conn, row, at=now, message=message
                            )
            except IntegrityError:
                # A store was deleted since the caller listed it (the foreign key): one at a
                # time, skipping it.
                for store_id, period in chunk:
                    with contextlib.suppress(NotFoundError):
                        result = await self.enqueue(
                            store_id, period.start, period.end, reason=reason
                        )
                        if result.created:
                            created.append(result.job)
        return created

    async def _refuse_over_cap(self, conn: AsyncConnection, store_id: int, reason: Reason) -> None:
        """Raise :class:`LimitExceededError` when a user's job was not inserted because the
        store's account is at its cap (see :mod:`storesync.queue.fairness`)."""
        if not self._capped(reason):
            return
        cap = self.settings.max_queued_jobs_per_account
        active = await conn.scalar(self._users_active, {"store_id": store_id})
        if int(active or 0) >= cap:
            raise queue_full(cap)

    @staticmethod
    def _new_job(
        store_id: int,
        period: Period,
        reason: Reason,
        priority: int | None,
        run_after: datetime | None,
        now: datetime,
        *,
        force: bool = False,
    ) -> dict[str, Any]:
        """The parameters of :meth:`_insert_if_absent` for a new job."""
        values = {
            "store_id": store_id,
            "priority": int(Priority.for_reason(reason)) if priority is None else priority,
            "reason": Reason(reason).value,
            "period_start": period.start,
            "period_end": period.end,
            "force": force,
            "queued_at": now,
            "run_after": run_after or now,
        }
        return {f"new_{name}": value for name, value in values.items()}

    def _insert_if_absent(self) -> Insert:
        """INSERT a queued job unless an active one has its store and period, or it is a
        user's and the account is at its cap (parameters: the ``values`` of :meth:`enqueue`)."""
        values = {name: _param(name) for name in _ENQUEUE_PARAMS}
        cap = self.settings.max_queued_jobs_per_account
        if not cap:
            return self._unless_active().values(
                status=JobStatus.QUEUED.value, retry_count=0, **values
            )
        fixed: dict[str, Any] = {
            "status": literal(JobStatus.QUEUED.value),
            "retry_count": literal(0),
        }
        row = select(*fixed.values(), *values.values()).where(
            under_cap(values["store_id"], values["reason"], cap)
        )
        return self._unless_active().from_select([*fixed, *values], row)

    def _unless_active(self) -> Insert:
        """An INSERT into the queue skipping any row whose store and period have an active
        job (the caller adds the rows)."""
        # Literal SQL, exactly as the index says: PostgreSQL matches the partial index by its
        # predicate, and a bound parameter in its place would not match.
        where = text("status IN ('queued', 'processing')")
        columns = ["store_id", "period_start", "period_end"]
        return insert_ignoring_conflicts(self.database.dialect, JOBS, key=columns, key_where=where)

    def _insert_arrays(self) -> Insert:
        """PostgreSQL: :meth:`_insert_if_absent` for many jobs of one priority and reason,
        queued now (parameters: ``now``, ``priority``, ``reason`` and an array per
        :data:`_BATCH_COLUMNS`, named after it with an ``s``)."""
        arrays = [bindparam(f"{name}s", type_=ARRAY(JOBS.c[name].type)) for name in _BATCH_COLUMNS]
        rows = (
            func.unnest(*arrays)
            .table_valued(*_BATCH_COLUMNS, with_ordinality="ordinal")
            .render_derived()
        )
        given = [rows.c[name] for name in _BATCH_COLUMNS]
        rest = {
            "status": literal(JobStatus.QUEUED.value),
            "retry_count": literal(0),
            "priority": bindparam("priority", type_=Integer),
            "reason": bindparam("reason", type_=String),
            "force": literal(False),
            "queued_at": _NOW,
            "run_after": _NOW,
        }
        names = [*_BATCH_COLUMNS, *rest]
        chosen = select(*given, *rest.values()).order_by(rows.c.ordinal)
        return self._unless_active().from_select(names, chosen)

    def _raise_active(self) -> Update:
        """Raise the active job of a store and period to the new request's priority and
        ``force`` (parameters: the ``values`` of :meth:`enqueue`)."""
        higher = func.max if self.database.is_sqlite else func.greatest  # of two values
        return (
            update(JOBS)
            .where(
                JOBS.c.store_id == _param("store_id"),
                JOBS.c.period_start == _param("period_start"),
                JOBS.c.period_end == _param("period_end"),
                JOBS.c.status.in_([s.value for s in ACTIVE]),
            )
            .values(
                priority=higher(JOBS.c.priority, _param("priority")),
                force=or_(JOBS.c.force, _param("force")),
            )
        )

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
                await conn.execute(_TAKE_CLAIM_LOCK)
            params = {
                "now": now,
                "limit": limit,
                "worker": worker_id,
                "lease_until": now + timedelta(seconds=self.settings.lease_seconds),
            }
            claim = self._claim_due if only is None else self._claim_one
            if only is not None:
                params["only"] = only
            rows = await claim.run(conn, params, at=now, message=f"claimed by {worker_id}")
            return sorted(rows, key=self._rank_key(now))

    def _claim_statement(self, *, only: bool) -> Update:
        """Start the next due jobs, at most ``limit`` and at most the free slots (parameters:
        ``now``, ``limit``, ``worker``, ``lease_until``, and ``only`` when ``only``)."""
        # The free slots are counted in the same statement: one round trip fewer, and
        # still exact, since the claim lock (or SQLite's write lock) is already held.
        processing = select(func.count()).where(JOBS.c.status == JobStatus.PROCESSING.value)
        free = self.settings.max_concurrent_jobs - processing.scalar_subquery()
        lower, higher = (
            (func.min, func.max) if self.database.is_sqlite else (func.least, func.greatest)
        )
        count = higher(0, lower(bindparam("limit", type_=Integer), free))
        ids = self._choose(_NOW, count, only=only)
        return (
            update(JOBS)
            # Re-checked on the row's newest version: a job cancelled after the choice was
            # made is left alone.
            .where(JOBS.c.id.in_(ids), JOBS.c.status == JobStatus.QUEUED.value)
            .values(
                status=JobStatus.PROCESSING.value,
                started_at=_NOW,
                heartbeat_at=_NOW,
                lease_expires_at=_LEASE_UNTIL,
                worker_id=bindparam("worker", type_=String),
            )
        )

    def _effective_priority(self, now: Any) -> Any:
        age = seconds_between(self.database.dialect, now, JOBS.c.queued_at)
        return JOBS.c.priority + age / self.settings.priority_aging_seconds

    def _rank_key(self, now: datetime) -> Callable[[Job], tuple[float, datetime, int]]:
        aging = self.settings.priority_aging_seconds

        def key(job: Job) -> tuple[float, datetime, int]:
            waited = (now - job.queued_at).total_seconds()
            return (-(job.priority + waited / aging), job.queued_at, job.id)

        return key

    def _choose(self, now: Any, count: Any, *, only: bool) -> Any:
        """The ids of the next ``count`` claimable jobs, at most one per store, accounts taking
        turns (only the job whose id is the ``only`` parameter, when ``only``)."""
        effective = self._effective_priority(now).label("effective")
        busy_stores = select(JOBS.c.store_id).where(JOBS.c.status == JobStatus.PROCESSING.value)
        ranked = (
            select(
                JOBS.c.id,
                JOBS.c.store_id,
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
                JOBS.c.run_after <= now,
                JOBS.c.store_id.not_in(busy_stores),
                *([JOBS.c.id == bindparam("only", type_=Integer)] if only else []),
            )
            .subquery()
        )
        points = self.settings.account_fairness_points
        per_account = self.settings.max_running_jobs_per_account
        if only or not (points or per_account):
            best = (
                select(ranked.c.id)
                .where(ranked.c.store_rank == 1)
                .order_by(ranked.c.effective.desc(), ranked.c.queued_at, ranked.c.id)
                .limit(count)
            )
        else:
            # Accounts take turns (see storesync.queue.fairness).
            heads = select(ranked).where(ranked.c.store_rank == 1).subquery()
            best = fair_order(heads, points, per_account).limit(count)
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
        params = {
            "ids": list(job_ids),
            "worker": worker_id,
            "now": now,
            "lease_until": now + timedelta(seconds=self.settings.lease_seconds),
        }
        async with self.database.statements() as conn:
            rows = await conn.execute(_RENEW_LEASES, params)
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
            failed_jobs = await change_jobs(
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
                at=now,
                log=LogLine("failed", reason),
                announce="job.failed",
            )
            cancelled_jobs = await change_jobs(
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
                at=now,
                log=LogLine("cancelled", f"cancelled: {reason}"),
                announce="job.cancelled",
            )
            requeued_jobs = await change_jobs(
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
                at=now,
                log=LogLine("rescued", reason),
                announce="job.queued",
            )
        return RescueReport(
            requeued=_ids(requeued_jobs), failed=_ids(failed_jobs), cancelled=_ids(cancelled_jobs)
        )

    # -- finishing -------------------------------------------------------------------------

    async def complete(
        self,
        job_id: int,
        worker_id: str,
        write_results: ResultWriter | None = None,
        *,
        progress: dict[str, Any] | None = None,
    ) -> Job:
        """Mark the job completed and run ``write_results`` in the same transaction; when a
        change was noted during this attempt (:meth:`note_change`), queue the period again.

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
            changed = await change_jobs(
                conn,
                update(JOBS).where(self._owned(job_id, worker_id)).values(values),
                at=now,
                log=LogLine("completed", "completed"),
                announce=None,
            )
            if not changed:
                raise LostJobError(f"job {job_id} is no longer held by worker {worker_id}")
            await self._finish(conn, changed, "job.completed", write_results)
            if await conn.scalar(_CHANGED_DURING_ATTEMPT, {"job_id": job_id}):
                # The figures just written may predate the change: sync the period again.
                job = changed[0]
                again = self._new_job(job.store_id, job.period, Reason.WEBHOOK, None, None, now)
                await self._insert_new.run(conn, again, at=now, message="queued by webhook")
            return changed[0]

    async def complete_many(self, worker_id: str, job_ids: Sequence[int]) -> list[int]:
        """Mark several jobs completed in one statement (jobs with nothing to write)."""
        if not job_ids:
            return []
        now = self.clock()
        params = {"ids": list(job_ids), "worker": worker_id, "now": now}
        async with self.database.statements() as conn:
            jobs = await self._complete_owned.run(conn, params, at=now, message="completed")
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
            changed = await change_jobs(
                conn,
                update(JOBS)
                # Still ours? A rescue may have taken it back since we read it.
                .where(self._owned(job_id, worker_id), JOBS.c.retry_count == job.retry_count)
                .values(values),
                at=now,
                log=LogLine(kind, note),
                announce=None,
            )
            if not changed:
                raise LostJobError(f"job {job_id} is no longer held by worker {worker_id}")
            await self._finish(conn, changed, f"job.{kind}", write_results)
            return changed[0]

    async def _finish(
        self,
        conn: AsyncConnection,
        changed: list[Job],
        kind: str,
        write_results: ResultWriter | None,
    ) -> None:
        """Write an attempt's results, then announce them before the job's end: a listener
        that stops listening at the end has heard of the new data."""
        if write_results is not None:
            await write_results(conn)
            await announce(conn, "cache.updated", changed)
        await announce(conn, kind, changed)

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
        held = {"ids": list(job_ids), "worker": worker_id}
        async with self.database.transaction() as conn:
            cancelled = await change_jobs(
                conn,
                update(JOBS)
                .where(_HELD, JOBS.c.cancel_requested)
                .values(
                    status=JobStatus.CANCELLED.value,
                    completed_at=now,
                    lease_expires_at=None,
                    error_message="cancelled while running",
                ),
                held,
                at=now,
                log=LogLine("cancelled", "cancelled while running"),
                announce="job.cancelled",
            )
            released = await change_jobs(
                conn,
                update(JOBS)
                .where(_HELD)
                .values(
                    status=JobStatus.QUEUED.value,
                    run_after=now,
                    started_at=None,
                    heartbeat_at=None,
                    lease_expires_at=None,
                    worker_id=None,
                ),
                held,
                at=now,
                log=LogLine("released", note),
                announce="job.queued",
            )
            return [j.id for j in (*cancelled, *released)]

    async def set_progress(self, job_id: int, worker_id: str, progress: dict[str, Any]) -> None:
        """Store the job's progress (and checkpoint); raises :class:`LostJobError` if not owned."""
        async with self.database.statements() as conn:
            changed = await change_jobs(
                conn,
                update(JOBS).where(self._owned(job_id, worker_id)).values(progress=progress),
                at=self.clock(),
                log=None,
                announce="job.progress",
            )
            if not changed:
                raise LostJobError(f"job {job_id} is no longer held by worker {worker_id}")

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
            changed = await change_jobs(
                conn,
                update(JOBS).where(JOBS.c.id == job_id).values(values),
                at=now,
                log=LogLine("cancel", note),
                announce=f"job.{values.get('status', job.status.value)}",
            )
            return changed[0]  # locked above: it cannot have gone

    async def note_change(self, job_id: int, note: str) -> bool:
        """Tell a running job that the data it syncs changed after it began (a webhook): its
        completion queues the period again, in the same transaction (a "changed" line in the
        log is the message).

        Returns False when the job no longer runs; the caller then queues the period itself.
        The job's row lock orders this with the job's completion, so one of the two always
        sees the other.
        """
        async with self.database.transaction(immediate=True) as conn:
            job = await self._get(conn, job_id, lock=True)
            if job.status is not JobStatus.PROCESSING:
                return False
            await write_log(conn, [job_id], self.clock(), "changed", note)
            return True

    async def mark_cancelled(self, job_id: int, worker_id: str) -> Job:
        """The worker stopped a job whose cancellation was requested."""
        now = self.clock()
        async with self.database.statements() as conn:
            stopped = await change_jobs(
                conn,
                update(JOBS)
                .where(self._owned(job_id, worker_id))
                .values(
                    status=JobStatus.CANCELLED.value,
                    completed_at=now,
                    lease_expires_at=None,
                    error_message="cancelled while running",
                ),
                at=now,
                log=LogLine("cancelled", "cancelled while running"),
                announce="job.cancelled",
            )
            if not stopped:
                raise LostJobError(f"job {job_id} is no longer held by worker {worker_id}")
            return stopped[0]

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
            try:  # queued before periods were checked (see Period.checked): never again
                Period.checked(job.period.start, job.period.end)
            except InputError as exc:
                raise InputError(f"job {job_id} cannot be retried: {exc}") from None
            if self._capped(job.reason) and self.database.is_postgres:
                await conn.execute(ACCOUNT_LOCK, {"store_id": job.store_id})
            await self._refuse_over_cap(conn, job.store_id, job.reason)
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
            again = await change_jobs(
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
                at=now,
                log=LogLine("queued", "queued again by retry"),
                announce="job.queued",
            )
            return again[0]  # locked above: it cannot have gone

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
        if not is_storable_id(job_id):  # no such row, and the driver would refuse the number
            raise NotFoundError(f"job {job_id} does not exist")
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
            query = query.where(owned_by(account_id))
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
        async with self.database.statements() as conn:
            await write_log(conn, [job_id], self.clock(), kind, message, data)


def _param(column: str) -> Any:
    """A parameter for ``column``'s value, named ``new_<column>``: a bind parameter may not
    take a column's own name in an INSERT or UPDATE."""
    return bindparam(f"new_{column}", type_=JOBS.c[column].type)


def _ids(jobs: Sequence[Job]) -> tuple[int, ...]:
    return tuple(sorted(job.id for job in jobs))

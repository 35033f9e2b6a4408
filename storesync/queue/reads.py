"""The queue's reads for the rest of the service: what the pages, the API, the scheduler and the
audit ask of ``sync_queue`` and ``sync_job_events``.

:mod:`storesync.queue` is the only code that reads or writes the queue's tables
(``sync_queue``, ``sync_job_events``, ``sync_workers``; a test holds it to that). The reads
that belong to the queue's own work (a job by id, the jobs page's list, a job's event log,
``count_due``) stay on :class:`~storesync.queue.JobQueue`; the figures of ``storesync stats``
and ``/api/queue/stats`` are :mod:`storesync.queue.stats`. These are the others, each in one
round trip per query and none of them taking locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync.periods import Period
from storesync.queue.jobs import ACTIVE, FINISHED, Job, JobStatus
from storesync.queue.transitions import EVENTS, JOBS
from storesync.storage.engine import Database
from storesync.storage.models import Store, table_of

STORES = table_of(Store)

_ACTIVE = [s.value for s in ACTIVE]
_FINISHED = [s.value for s in FINISHED]


def owned_by(account_id: int) -> ColumnElement[bool]:
    """The condition "the job's store belongs to account ``account_id``" (the one account
    filter of every read of an account's jobs)."""
    return JOBS.c.store_id.in_(select(STORES.c.id).where(STORES.c.account_id == account_id))


# -- one period ----------------------------------------------------------------------------


async def latest_job(database: Database, store_id: int, period: Period) -> Job | None:
    """The most recently queued job of this store and period, if any."""
    query = (
        select(JOBS)
        .where(
            JOBS.c.store_id == store_id,
            JOBS.c.period_start == period.start,
            JOBS.c.period_end == period.end,
        )
        .order_by(JOBS.c.id.desc())
        .limit(1)
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).mappings().first()
    return Job.from_row(row) if row is not None else None


# -- the scheduler -------------------------------------------------------------------------


async def active_periods(database: Database) -> set[tuple[int, Period]]:
    """Every (store id, period) with a job queued or processing."""
    query = select(JOBS.c.store_id, JOBS.c.period_start, JOBS.c.period_end).where(
        JOBS.c.status.in_(_ACTIVE)
    )
    async with database.read() as conn:
        return {
            (int(r.store_id), Period(r.period_start, r.period_end))
            for r in await conn.execute(query)
        }


async def periods_failed_since(database: Database, since: datetime) -> set[tuple[int, Period]]:
    """Every (store id, period) with a job that failed at or after ``since``."""
    query = (
        select(JOBS.c.store_id, JOBS.c.period_start, JOBS.c.period_end)
        .where(JOBS.c.status == JobStatus.FAILED.value, JOBS.c.completed_at >= since)
        .group_by(JOBS.c.store_id, JOBS.c.period_start, JOBS.c.period_end)
        .having(func.count() > 0)
    )
    async with database.read() as conn:
        return {
            (int(r.store_id), Period(r.period_start, r.period_end))
            for r in await conn.execute(query)
        }


# -- the stores page -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoresJobState:
    """Of some stores: those with a job running, and each one's most recently finished job's
    status and error message."""

    syncing: set[int]
    last_finished: dict[int, tuple[str, str | None]]


async def stores_job_state(database: Database, store_ids: Sequence[int]) -> StoresJobState:
    """What the stores page's badges need of the queue, for ``store_ids``."""
    ids = list(store_ids)
    busy = select(JOBS.c.store_id).where(
        JOBS.c.store_id.in_(ids), JOBS.c.status == JobStatus.PROCESSING.value
    )
    newest = (
        select(JOBS.c.store_id, func.max(JOBS.c.completed_at).label("at"))
        .where(JOBS.c.store_id.in_(ids), JOBS.c.status.in_(_FINISHED))
        .group_by(JOBS.c.store_id)
        .subquery()
    )
    finished = select(JOBS.c.store_id, JOBS.c.status, JOBS.c.error_message).join(
        newest, and_(newest.c.store_id == JOBS.c.store_id, newest.c.at == JOBS.c.completed_at)
    )
    async with database.read() as conn:
        syncing = {int(r.store_id) for r in await conn.execute(busy)}
        last_finished = {
            int(r.store_id): (str(r.status), r.error_message) for r in await conn.execute(finished)
        }
    return StoresJobState(syncing, last_finished)


# -- the queue panel -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreJob:
    """A job with its store's name and time zone (as the queue panel lists it)."""

    job: Job
    store_name: str
    timezone: str

    @property
    def percent(self) -> int:
        return int((self.job.progress or {}).get("percent") or 0)


@dataclass(slots=True)
class AccountJobs:
    """An account's current jobs: counts per status, and the first few of each list."""

    counts: dict[str, int]
    running: list[StoreJob] = field(default_factory=list)
    waiting: list[StoreJob] = field(default_factory=list)
    failures: list[StoreJob] = field(default_factory=list)


async def account_jobs(
    database: Database, account_id: int, *, since: datetime, shown: int, failures_shown: int
) -> AccountJobs:
    """Of account ``account_id``'s jobs waiting, running or finished at or after ``since``: the
    count per status (every status present, 0 when none), the first ``shown`` running (oldest
    start first) and waiting (in priority order), and the ``failures_shown`` latest failures.
    Four queries on one connection."""
    current = or_(JOBS.c.status.in_(_ACTIVE), JOBS.c.completed_at >= since)
    counting = (
        select(JOBS.c.status, func.count())
        .where(owned_by(account_id), current)
        .group_by(JOBS.c.status)
    )
    listed = (
        select(JOBS, STORES.c.name.label("store_name"), STORES.c.timezone.label("store_tz"))
        .join(STORES, STORES.c.id == JOBS.c.store_id)
        .where(STORES.c.account_id == account_id)
    )
    async with database.read() as conn:
        counts = {status.value: 0 for status in JobStatus}
        for status, number in await conn.execute(counting):
            counts[str(status)] = int(number)
        running = await _store_jobs(
            conn,
            listed.where(JOBS.c.status == JobStatus.PROCESSING.value).order_by(JOBS.c.started_at),
            shown,
        )
        waiting = await _store_jobs(
            conn,
            listed.where(JOBS.c.status == JobStatus.QUEUED.value).order_by(
                JOBS.c.priority.desc(), JOBS.c.queued_at
            ),
            shown,
        )
        failures = await _store_jobs(
            conn,
            listed.where(
                JOBS.c.status == JobStatus.FAILED.value, JOBS.c.completed_at >= since
            ).order_by(JOBS.c.completed_at.desc()),
            failures_shown,
        )
    return AccountJobs(counts, running, waiting, failures)


async def _store_jobs(conn: AsyncConnection, query: Select[Any], limit: int) -> list[StoreJob]:
    rows = (await conn.execute(query.limit(limit))).mappings().all()
    return [
        StoreJob(
            Job.from_row(cast(RowMapping, {key: row[key] for key in JOBS.c.keys()})),
            row["store_name"],
            row["store_tz"],
        )
        for row in rows
    ]


# -- the whole history (the audit) ---------------------------------------------------------


class JobFacts(NamedTuple):
    """A job's fixed facts, as the audit replays them."""

    id: int
    store_id: int
    period_start: date
    period_end: date
    reason: str
    priority: int
    status: str
    queued_at: datetime
    completed_at: datetime | None


class EventLine(NamedTuple):
    """One line of a job's event log; ``seq`` is its id, the order the database wrote it in."""

    seq: int
    job_id: int
    at: datetime
    kind: str
    has_data: bool


async def job_history(database: Database) -> tuple[list[JobFacts], list[EventLine]]:
    """Every job's facts, and every event-log line in id order (both read on one connection)."""
    async with database.read() as conn:
        job_rows = await conn.execute(
            select(
                JOBS.c.id,
                JOBS.c.store_id,
                JOBS.c.period_start,
                JOBS.c.period_end,
                JOBS.c.reason,
                JOBS.c.priority,
                JOBS.c.status,
                JOBS.c.queued_at,
                JOBS.c.completed_at,
            )
        )
        jobs = [
            JobFacts(
                int(r.id),
                int(r.store_id),
                r.period_start,
                r.period_end,
                r.reason,
                int(r.priority),
                r.status,
                r.queued_at,
                r.completed_at,
            )
            for r in job_rows
        ]
        event_rows = await conn.execute(
            select(
                EVENTS.c.id,
                EVENTS.c.job_id,
                EVENTS.c.at,
                EVENTS.c.kind,
                EVENTS.c.data,  # the queue's lines have none: SQL NULL or JSON null
            ).order_by(EVENTS.c.id)
        )
        lines = [
            EventLine(int(r.id), int(r.job_id), r.at, r.kind, bool(r.data)) for r in event_rows
        ]
    return jobs, lines

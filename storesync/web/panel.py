"""The queue panel (the seed's QueueStatus) of one account: what every page shows beside it.

Counts per status of the account's jobs (waiting and running ones, and those finished in the
last 24 hours), the running jobs with their progress, the jobs waiting (with the reason a job
is deferred), the recent failures with their messages, and whether any worker is alive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync.accounts import AccountRef
from storesync.queue import Job, JobStatus
from storesync.queue.stats import queue_stats
from storesync.settings import Settings
from storesync.storage.engine import Database
from storesync.storage.models import SyncJob, table_of
from storesync.stores import STORES

JOBS = table_of(SyncJob)

RECENT = timedelta(hours=24)
SHOWN = 5
#: Failures listed; the others are a link to the jobs page.
FAILURES_SHOWN = 3
STATUSES = [s.value for s in JobStatus]


@dataclass(frozen=True, slots=True)
class PanelJob:
    """A job as the panel lists it, with its store's name and time zone."""

    job: Job
    store_name: str
    timezone: str

    @property
    def percent(self) -> int:
        return int((self.job.progress or {}).get("percent") or 0)


@dataclass(slots=True)
class QueuePanel:
    counts: dict[str, int]
    running: list[PanelJob] = field(default_factory=list)
    waiting: list[PanelJob] = field(default_factory=list)
    failures: list[PanelJob] = field(default_factory=list)
    workers: int = 0
    diagnosis: list[str] = field(default_factory=list)

    @property
    def more_waiting(self) -> int:
        return max(0, self.counts.get("queued", 0) - len(self.waiting))

    @property
    def more_failures(self) -> int:
        return max(0, self.counts.get("failed", 0) - len(self.failures))


def _owned(account_id: int) -> ColumnElement[bool]:
    return JOBS.c.store_id.in_(select(STORES.c.id).where(STORES.c.account_id == account_id))


async def queue_panel(database: Database, settings: Settings, account: AccountRef) -> QueuePanel:
    """The panel's figures for ``account`` (four small queries and the workers)."""
    since = datetime.now(UTC) - RECENT
    active = [JobStatus.QUEUED.value, JobStatus.PROCESSING.value]
    current = or_(JOBS.c.status.in_(active), JOBS.c.completed_at >= since)
    counting = (
        select(JOBS.c.status, func.count())
        .where(_owned(account.id), current)
        .group_by(JOBS.c.status)
    )
    listed = (
        select(JOBS, STORES.c.name.label("store_name"), STORES.c.timezone.label("store_tz"))
        .join(STORES, STORES.c.id == JOBS.c.store_id)
        .where(STORES.c.account_id == account.id)
    )
    async with database.read() as conn:
        counts = {status: 0 for status in STATUSES}
        for status, number in await conn.execute(counting):
            counts[str(status)] = int(number)
        running = await _jobs(
            conn,
            listed.where(JOBS.c.status == JobStatus.PROCESSING.value).order_by(JOBS.c.started_at),
        )
        waiting = await _jobs(
            conn,
            listed.where(JOBS.c.status == JobStatus.QUEUED.value).order_by(
                JOBS.c.priority.desc(), JOBS.c.queued_at
            ),
        )
        failures = await _jobs(
            conn,
            listed.where(
                JOBS.c.status == JobStatus.FAILED.value, JOBS.c.completed_at >= since
            ).order_by(JOBS.c.completed_at.desc()),
            FAILURES_SHOWN,
        )
    stats = await queue_stats(database, settings, account_id=account.id)
    return QueuePanel(
        counts=counts,
        running=running,
        waiting=waiting,
        failures=failures,
        workers=len(stats.workers),
        diagnosis=stats.diagnosis,
    )


async def _jobs(conn: AsyncConnection, query: Select[Any], limit: int = SHOWN) -> list[PanelJob]:
    rows = (await conn.execute(query.limit(limit))).mappings().all()
    return [
        PanelJob(
            Job.from_row(cast(RowMapping, {key: row[key] for key in JOBS.c.keys()})),
            row["store_name"],
            row["store_tz"],
        )
        for row in rows
    ]

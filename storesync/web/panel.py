"""The queue panel (the seed's QueueStatus) of one account: what every page shows beside it.

Counts per status of the account's jobs (waiting and running ones, and those finished in the
last 24 hours), the running jobs with their progress, the jobs waiting (with the reason a job
is deferred), the recent failures with their messages, and whether any worker is alive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from storesync.accounts import AccountRef
from storesync.queue.reads import StoreJob, account_jobs
from storesync.queue.stats import queue_stats
from storesync.settings import Settings
from storesync.storage.engine import Database

RECENT = timedelta(hours=24)
SHOWN = 5
#: Failures listed; the others are a link to the jobs page.
FAILURES_SHOWN = 3

#: A job as the panel lists it, with its store's name and time zone.
PanelJob = StoreJob


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


async def queue_panel(database: Database, settings: Settings, account: AccountRef) -> QueuePanel:
    """The panel's figures for ``account`` (four small queries and the workers)."""
    jobs = await account_jobs(
        database,
        account.id,
        since=datetime.now(UTC) - RECENT,
        shown=SHOWN,
        failures_shown=FAILURES_SHOWN,
    )
    stats = await queue_stats(database, settings, account_id=account.id)
    return QueuePanel(
        counts=jobs.counts,
        running=jobs.running,
        waiting=jobs.waiting,
        failures=jobs.failures,
        workers=len(stats.workers),
        diagnosis=stats.diagnosis,
    )

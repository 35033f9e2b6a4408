"""The jobs page: the account's jobs filtered by status, store and period, newest first.

A period filter keeps the jobs of exactly that period: a named one (``last_7_days``) is
resolved in each job's store's time zone, as the dashboard and the scheduler resolve it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from storesync.errors import InputError
from storesync.periods import NAMED_PERIODS, Period, named_period, today_in, zone
from storesync.queue import Job, JobQueue, JobStatus
from storesync.stores import StoreInfo

#: Jobs looked at per page view; the period filter works on these.
SCANNED = 500
SHOWN = 100


@dataclass(frozen=True, slots=True)
class JobFilters:
    status: str = ""
    store: str = ""
    period: str = ""
    start: str = ""
    end: str = ""

    def query(self) -> dict[str, str]:
        """The filters as query parameters (empty ones left out)."""
        values = {
            "status": self.status,
            "store": self.store,
            "period": self.period,
            "start": self.start if self.period == "custom" else "",
            "end": self.end if self.period == "custom" else "",
        }
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True, slots=True)
class JobRow:
    job: Job
    store: StoreInfo | None

    @property
    def percent(self) -> int:
        return int((self.job.progress or {}).get("percent") or 0)


async def filtered_jobs(
    queue: JobQueue, stores: list[StoreInfo], account_id: int, filters: JobFilters
) -> list[JobRow]:
    """The jobs matching ``filters``; :class:`InputError` for a filter that makes no sense."""
    by_id = {s.id: s for s in stores}
    status = None
    if filters.status:
        if filters.status not in {s.value for s in JobStatus}:
            raise InputError(f"unknown status {filters.status!r}")
        status = JobStatus(filters.status)
    store_id = None
    if filters.store:
        if not filters.store.isdigit() or int(filters.store) not in by_id:
            raise InputError(f"store {filters.store} does not exist")
        store_id = int(filters.store)
    wanted = _period_test(filters)
    jobs = await queue.list_jobs(
        status=status, store_id=store_id, account_id=account_id, limit=SCANNED
    )
    now = datetime.now(UTC)
    rows = []
    for job in jobs:
        store = by_id.get(job.store_id)
        if wanted is not None and (store is None or not wanted(job, store, now)):
            continue
        rows.append(JobRow(job, store))
        if len(rows) >= SHOWN:
            break
    return rows


PeriodTest = Callable[[Job, StoreInfo, datetime], bool]


def _period_test(filters: JobFilters) -> PeriodTest | None:
    if not filters.period:
        return None
    if filters.period == "custom":
        if not filters.start or not filters.end:
            raise InputError("a custom period needs a start and an end date")
        # No maximum length: a filter only looks for jobs, whose periods were checked.
        custom = Period.parse(filters.start, filters.end, max_days=None)

        def same_dates(job: Job, _store: StoreInfo, _now: datetime) -> bool:
            return job.period == custom

        return same_dates
    if filters.period not in NAMED_PERIODS:
        raise InputError(f"unknown period {filters.period!r}")
    name = filters.period

    def same_named(job: Job, store: StoreInfo, now: datetime) -> bool:
        return job.period == named_period(name, today_in(zone(store.timezone), now))

    return same_named

"""``GET /api/stores/{id}/dashboard``: cache first, and a refresh queued when one is due.

- fresh: 200 with the dashboard document, ``meta.stale = false``;
- stale (expired, or marked by a webhook): 200 at once with ``meta.stale = true`` and a
  refresh queued at user priority (stale-while-revalidate); ``meta.refresh_job_id`` names it;
- nothing cached: 202 with the job and ``Location: /api/jobs/{id}``;
- ``force=true``: 202 with a refresh job whatever the cache holds;
- 429 (``Retry-After``) when a job is needed and the account has its maximum of syncs queued;
  a stale read still answers 200, with no refresh job.

Jobs are de-duplicated by the queue: concurrent requests for one period get the same job.
When the last refresh of the period failed less than :data:`FAILURE_HOLD_OFF` ago, a read
queues nothing and points at that failed job instead (its ``error_message`` says why): a
dashboard polling a store whose token was revoked must not start a doomed sync, and spend two
of Klaviyo's 225 daily report calls, on every read. ``force=true`` or ``POST …/sync`` retry
at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from storesync.api.context import ApiContext
from storesync.api.deps import ContextDep, OwnedStore, PeriodQuery
from storesync.api.errors import API_ERRORS, NOT_FOUND, Responses
from storesync.api.reads import latest_job, read_periods
from storesync.api.schemas import DashboardOut, JobPublic
from storesync.cache import Freshness, dashboard_json
from storesync.errors import LimitExceededError
from storesync.periods import Period
from storesync.queue import Job, JobStatus, Reason
from storesync.stores import StoreInfo

router = APIRouter(prefix="/api", tags=["dashboard"], responses={**API_ERRORS, **NOT_FOUND})

FAILURE_HOLD_OFF = timedelta(minutes=5)
#: The label of ``storesync_cache_reads`` per outcome.
READ_OUTCOME = {Freshness.FRESH: "hit", Freshness.STALE: "stale", Freshness.MISSING: "miss"}

ACCEPTED: Responses = {
    202: {
        "model": JobPublic,
        "description": "Nothing usable is cached (or force): a refresh job is queued, or the "
        "identical one already waiting is returned. Poll Location or listen on /api/events. "
        "When the period's last refresh failed less than 5 minutes ago, that failed job is "
        "returned and nothing is queued (force=true retries at once).",
        "headers": {
            "Location": {"description": "The job: /api/jobs/{id}", "schema": {"type": "string"}}
        },
    }
}


def accepted(job: Job) -> JSONResponse:
    """202 with the job and where to follow it."""
    return JSONResponse(
        JobPublic.of(job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )


@router.get(
    "/stores/{store_id}/dashboard",
    response_model=DashboardOut,
    responses=ACCEPTED,
    summary="The dashboard of one store and period, from the cache",
)
async def dashboard(
    store: OwnedStore,
    period: PeriodQuery,
    ctx: ContextDep,
    force: Annotated[
        bool, Query(description="Queue a refresh whatever the cache holds (answers 202).")
    ] = False,
) -> Any:
    if force:
        ctx.metrics.cache_reads.labels("forced").inc()
        enqueued = await ctx.queue.enqueue(
            store.id, period.start, period.end, reason=Reason.USER, force=True
        )
        return accepted(enqueued.job)
    previous = period.previous()
    cached = await read_periods(ctx.database, store.id, [period, previous])
    now = datetime.now(UTC)
    freshness = cached[period].freshness(now, needs_klaviyo=store.has_klaviyo)
    ctx.metrics.cache_reads.labels(READ_OUTCOME[freshness]).inc()
    if freshness is Freshness.MISSING:
        return accepted(await _refresh(ctx, store, period, now))
    document = dashboard_json(
        store_id=store.id,
        currency=store.currency,
        current=cached[period],
        previous=cached[previous],
        now=now,
        needs_klaviyo=store.has_klaviyo,
    )
    if freshness is Freshness.STALE:
        try:
            document["meta"]["refresh_job_id"] = (await _refresh(ctx, store, period, now)).id
        except LimitExceededError:
            pass  # the account's syncs are at their cap: the stale figures still answer
    return document


async def _refresh(ctx: ApiContext, store: StoreInfo, period: Period, now: datetime) -> Job:
    """Queue a user-priority refresh, unless the period's last one failed just now."""
    last = await latest_job(ctx.database, store.id, period)
    if (
        last is not None
        and last.status is JobStatus.FAILED
        and last.completed_at is not None
        and now - last.completed_at < FAILURE_HOLD_OFF
    ):
        return last
    enqueued = await ctx.queue.enqueue(store.id, period.start, period.end, reason=Reason.USER)
    return enqueued.job

"""Jobs: queue a sync, list and inspect jobs (progress and event log), cancel and retry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from storesync.api.context import ApiContext
from storesync.api.deps import ContextDep, CurrentAccount, OwnedJob, OwnedStore, checked_period
from storesync.api.errors import API_ERRORS, CONFLICT, NOT_FOUND, UNREADABLE, Responses
from storesync.api.reads import latest_job, read_periods
from storesync.api.routes.dashboard import ACCEPTED, accepted
from storesync.api.schemas import MAX_ID, JobDetail, JobEventPublic, JobPage, JobPublic, SyncRequest
from storesync.cache import Freshness
from storesync.periods import Period
from storesync.queue import Job, JobStatus, Reason
from storesync.stores import StoreInfo

router = APIRouter(prefix="/api", tags=["jobs"], responses={**API_ERRORS, **NOT_FOUND})

SYNC_ACCEPTED: Responses = {
    202: {
        **ACCEPTED[202],
        "description": "The sync's job: a new one, the identical one already queued or "
        "running, or, when the period's cache is fresh (and not force), the completed job that "
        "filled it. Poll Location or listen on /api/events.",
    }
}


@router.post(
    "/stores/{store_id}/sync",
    status_code=202,
    response_model=JobPublic,
    responses={**SYNC_ACCEPTED, **UNREADABLE},
    summary="Queue a sync of one store and period",
)
async def sync(store: OwnedStore, request: SyncRequest, ctx: ContextDep) -> JSONResponse:
    """Queue a user-priority sync; a request for a period already queued gets that job, and
    one for a period whose cache is fresh gets the completed job that filled it (``force``
    syncs anyway)."""
    period = checked_period(ctx, request.start, request.end)
    if not request.force:
        # A repeated click after the sync finished must not sync again: each sync spends
        # two of the Klaviyo account's 225 daily report calls.
        filled = await _job_behind_fresh_cache(ctx, store, period)
        if filled is not None:
            return accepted(filled)
    enqueued = await ctx.queue.enqueue(
        store.id, period.start, period.end, reason=Reason.USER, force=request.force
    )
    return accepted(enqueued.job)


async def _job_behind_fresh_cache(ctx: ApiContext, store: StoreInfo, period: Period) -> Job | None:
    """The period's latest job when it completed and the cache it filled is still fresh."""
    cached = (await read_periods(ctx.database, store.id, [period]))[period]
    now = datetime.now(UTC)
    if cached.freshness(now, needs_klaviyo=store.has_klaviyo) is not Freshness.FRESH:
        return None
    last = await latest_job(ctx.database, store.id, period)
    return last if last is not None and last.status is JobStatus.COMPLETED else None


@router.get("/jobs", response_model=JobPage, summary="Jobs of the caller's stores, newest first")
async def list_jobs(
    account: CurrentAccount,
    ctx: ContextDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    store_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only this store's jobs.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> JobPage:
    if store_id is not None:
        await ctx.stores.get(store_id, account_id=account.id)  # 404 for another's store
    jobs = await ctx.queue.list_jobs(
        status=status, store_id=store_id, account_id=account.id, limit=limit + 1, offset=offset
    )
    more = len(jobs) > limit
    return JobPage(
        items=[JobPublic.of(j) for j in jobs[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
    )


@router.get("/jobs/{job_id}", response_model=JobDetail, summary="One job, its progress and log")
async def get_job(job: OwnedJob, ctx: ContextDep) -> JobDetail:
    events = await ctx.queue.events(job.id)
    return JobDetail(
        **JobPublic.of(job).model_dump(),
        events=[JobEventPublic(**e) for e in events],
    )


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobPublic,
    responses=CONFLICT,
    summary="Cancel a queued job, or ask the worker running it to stop",
)
async def cancel_job(job: OwnedJob, ctx: ContextDep) -> Any:
    return JobPublic.of(await ctx.queue.cancel(job.id))


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobPublic,
    responses=CONFLICT,
    summary="Queue a failed or cancelled job again",
)
async def retry_job(job: OwnedJob, ctx: ContextDep) -> Any:
    return JobPublic.of(await ctx.queue.retry(job.id))

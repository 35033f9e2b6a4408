"""Jobs: queue a sync, list and inspect jobs (progress and event log), cancel and retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from storesync.api.deps import ContextDep, CurrentAccount, OwnedJob, OwnedStore, checked_period
from storesync.api.errors import API_ERRORS, CONFLICT, NOT_FOUND, UNREADABLE, Responses
from storesync.api.routes.dashboard import ACCEPTED, accepted
from storesync.api.schemas import MAX_ID, JobDetail, JobEventPublic, JobPage, JobPublic, SyncRequest
from storesync.queue import JobStatus

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
    # The rules (fresh: the completed job behind the cache, unless force) are the service's;
    # the answer must name a job, so a fresh cache with none on record queues one.
    requested = await ctx.dashboards.request_sync(
        store, period, force=request.force, job_required=True
    )
    assert requested.job is not None  # job_required
    return accepted(requested.job)


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

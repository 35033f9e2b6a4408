"""``GET /api/stores/{id}/dashboard``: cache first, and a refresh queued when one is due.

- fresh: 200 with the dashboard document, ``meta.stale = false``;
- stale (expired, or marked by a webhook): 200 at once with ``meta.stale = true`` and a
  refresh queued at user priority (stale-while-revalidate); ``meta.refresh_job_id`` names it;
- nothing cached: 202 with the job and ``Location: /api/jobs/{id}``;
- ``force=true``: 202 with a refresh job whatever the cache holds;
- 429 (``Retry-After``) when a job is needed and the account has its maximum of syncs queued;
  a stale read still answers 200, with no refresh job.

Jobs are de-duplicated by the queue: concurrent requests for one period get the same job.
The refresh rules (and the hold-off after a failed refresh) are :mod:`storesync.dashboards`':
this module only answers in HTTP.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from storesync.api.deps import ContextDep, OwnedStore, PeriodQuery
from storesync.api.errors import API_ERRORS, NOT_FOUND, Responses
from storesync.api.schemas import DashboardOut, JobPublic
from storesync.cache import Freshness
from storesync.dashboards import USER_FAILURE_HOLD_OFF
from storesync.queue import Job

router = APIRouter(prefix="/api", tags=["dashboard"], responses={**API_ERRORS, **NOT_FOUND})

#: The label of ``storesync_cache_reads`` per outcome.
READ_OUTCOME = {Freshness.FRESH: "hit", Freshness.STALE: "stale", Freshness.MISSING: "miss"}

HOLD_OFF_MINUTES = int(USER_FAILURE_HOLD_OFF.total_seconds() // 60)
ACCEPTED: Responses = {
    202: {
        "model": JobPublic,
        "description": "Nothing usable is cached (or force): a refresh job is queued, or the "
        "identical one already waiting is returned. Poll Location or listen on /api/events. "
        f"When the period's last refresh failed less than {HOLD_OFF_MINUTES} minutes ago, that "
        "failed job is "
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
    dashboards = ctx.dashboards
    if force:
        ctx.metrics.cache_reads.labels("forced").inc()
        return accepted(await dashboards.refresh_now(store, period))
    read = await dashboards.read(store, period)
    ctx.metrics.cache_reads.labels(READ_OUTCOME[read.freshness]).inc()
    if read.freshness is Freshness.MISSING:
        assert read.job is not None  # a missing read queues a job (or raises at the cap)
        return accepted(read.job)
    return read.document()

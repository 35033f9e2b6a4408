"""The pages: stores, a store's dashboard and settings, jobs and one job's log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from storesync.errors import InputError, NotFoundError
from storesync.periods import zone
from storesync.web.dashboard import Sorting, load_dashboard
from storesync.web.deps import Context, PageVisitor, State
from storesync.web.jobs import JobFilters, filtered_jobs
from storesync.web.overview import store_rows
from storesync.web.picker import PickedPeriod, pick
from storesync.web.routes.common import not_found, page, url
from storesync.web.tables import COLUMNS, checked_sort

router = APIRouter(include_in_schema=False)

Param = Annotated[str | None, Query()]

#: Messages a redirect may ask a page to show (never text from the query itself).
NOTICES = {
    "fresh": "Already up to date: the figures below come straight from the cache.",
    "queued": "Sync queued: its progress shows here and in the queue panel.",
    "saved": "Settings saved.",
    "retried": "The job is queued again.",
    "cancelled": "Cancellation requested.",
    "limited": "Not queued: this account already has its maximum of syncs waiting or running. "
    "Try again when some have finished.",
}


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/stores", status_code=303)


@router.get("/stores")
async def stores_page(
    request: Request, visitor: PageVisitor, state: State, ctx: Context
) -> Response:
    rows = await store_rows(ctx.database, ctx.settings, ctx.stores, visitor.account.id)
    return await page(
        request,
        state,
        ctx,
        visitor,
        "stores.html",
        {"rows": rows, "daily_budget": ctx.settings.klaviyo_daily_report_budget},
    )


async def _not_found(
    request: Request, visitor: PageVisitor, state: State, ctx: Context, message: str
) -> Response:
    return await not_found(request, state, ctx, visitor, message)


@router.get("/stores/{store_id}")
async def dashboard_page(
    store_id: int,
    request: Request,
    visitor: PageVisitor,
    state: State,
    ctx: Context,
    period: Param = None,
    start: Param = None,
    end: Param = None,
    csort: Param = None,
    cdir: Param = None,
    fsort: Param = None,
    fdir: Param = None,
    notice: Param = None,
) -> Response:
    try:
        store = await ctx.stores.get(store_id, account_id=visitor.account.id)
    except NotFoundError:
        return await _not_found(request, visitor, state, ctx, f"Store {store_id} does not exist.")
    error = None
    try:
        picked = pick(
            period, start, end, timezone=store.timezone, max_days=ctx.settings.max_period_days
        )
    except InputError as exc:
        error = f"{exc}; showing the last 7 days instead."
        picked = pick(None, None, None, timezone=store.timezone, max_days=366)
    sorting = Sorting(checked_sort(csort, cdir), checked_sort(fsort, fdir))
    view = await load_dashboard(ctx.dashboards, store, picked, sorting)
    return await page(
        request,
        state,
        ctx,
        visitor,
        "dashboard.html",
        {
            "view": view,
            "sorting": sorting,
            "columns": COLUMNS,
            "error": error,
            "notice": NOTICES.get(notice or ""),
            "figures_url": figures_url(store_id, picked, sorting),
        },
        status_code=422 if error else 200,
    )


def figures_url(store_id: int, picked: PickedPeriod, sorting: Sorting) -> str:
    """Where the page's script reloads the figures from."""
    return url(
        f"/web/stores/{store_id}/figures",
        {
            **picked.query(),
            "csort": sorting.campaigns[0],
            "cdir": sorting.campaigns[1],
            "fsort": sorting.flows[0],
            "fdir": sorting.flows[1],
        },
    )


@router.get("/stores/{store_id}/settings")
async def settings_page(
    store_id: int,
    request: Request,
    visitor: PageVisitor,
    state: State,
    ctx: Context,
    notice: Param = None,
) -> Response:
    try:
        store = await ctx.stores.get(store_id, account_id=visitor.account.id)
    except NotFoundError:
        return await _not_found(request, visitor, state, ctx, f"Store {store_id} does not exist.")
    return await page(
        request,
        state,
        ctx,
        visitor,
        "store_settings.html",
        {"store": store, "error": None, "notice": NOTICES.get(notice or "")},
    )


@router.get("/jobs")
async def jobs_page(
    request: Request,
    visitor: PageVisitor,
    state: State,
    ctx: Context,
    status: Param = None,
    store: Param = None,
    period: Param = None,
    start: Param = None,
    end: Param = None,
) -> Response:
    filters = JobFilters(status or "", store or "", period or "", start or "", end or "")
    stores = await ctx.stores.list(account_id=visitor.account.id)
    error = None
    try:
        rows = await filtered_jobs(ctx.queue, stores, visitor.account.id, filters)
    except InputError as exc:
        error, rows = str(exc), []
    return await page(
        request,
        state,
        ctx,
        visitor,
        "jobs.html",
        {"filters": filters, "stores": stores, "rows": rows, "error": error, "zone": zone},
        status_code=422 if error else 200,
    )


@router.get("/jobs/{job_id}")
async def job_page(
    job_id: int, request: Request, visitor: PageVisitor, state: State, ctx: Context
) -> Response:
    try:
        job = await ctx.queue.get(job_id)
        store = await ctx.stores.get(job.store_id, account_id=visitor.account.id)
    except NotFoundError:
        return await _not_found(request, visitor, state, ctx, f"Job {job_id} does not exist.")
    events = await ctx.queue.events(job.id)
    return await page(
        request, state, ctx, visitor, "job.html", {"job": job, "store": store, "events": events}
    )

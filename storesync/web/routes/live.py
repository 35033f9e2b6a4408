"""What the pages' script asks for, with the session cookie: the event stream and fragments.

``GET /web/events`` is the account's server-sent event stream (the API's ``/api/events``,
authenticated by the session cookie, because ``EventSource`` cannot send a bearer token). On
an event the script reloads the fragments it concerns, once each however many events came in
the same moment: the queue panel, a dashboard's figures, the jobs table, a job's log. Nothing
polls.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from storesync.errors import NotFoundError
from storesync.web.dashboard import Sorting, load_dashboard
from storesync.web.deps import Context, LiveVisitor, State
from storesync.web.jobs import JobFilters, filtered_jobs
from storesync.web.overview import store_rows
from storesync.web.panel import queue_panel
from storesync.web.picker import pick
from storesync.web.routes.common import partial
from storesync.web.routes.pages import figures_url
from storesync.web.signin import account_of_session
from storesync.web.tables import COLUMNS, checked_sort

router = APIRouter(prefix="/web", include_in_schema=False)
Param = Annotated[str | None, Query()]


@router.get("/events")
async def events(visitor: LiveVisitor, ctx: Context) -> StreamingResponse:
    async def session_open() -> bool:
        return await account_of_session(ctx.database, visitor.session) is not None

    return StreamingResponse(
        # Signing out (or a revoked token) ends an open stream too.
        ctx.streams.stream(visitor.account.id, visitor.account.name, still_allowed=session_open),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/queue")
async def queue_fragment(
    request: Request, visitor: LiveVisitor, state: State, ctx: Context, path: Param = None
) -> Response:
    panel = await queue_panel(ctx.database, ctx.settings, visitor.account)
    return partial(request, state, visitor, "_queue_panel.html", {"panel": panel, "back": path})


@router.get("/stores")
async def stores_fragment(
    request: Request, visitor: LiveVisitor, state: State, ctx: Context
) -> Response:
    rows = await store_rows(ctx.database, ctx.settings, ctx.stores, visitor.account.id)
    return partial(
        request,
        state,
        visitor,
        "_stores_table.html",
        {"rows": rows, "daily_budget": ctx.settings.klaviyo_daily_report_budget},
    )


@router.get("/stores/{store_id}/figures")
async def figures_fragment(
    store_id: int,
    request: Request,
    visitor: LiveVisitor,
    state: State,
    ctx: Context,
    period: Param = None,
    start: Param = None,
    end: Param = None,
    csort: Param = None,
    cdir: Param = None,
    fsort: Param = None,
    fdir: Param = None,
) -> Response:
    store = await ctx.stores.get(store_id, account_id=visitor.account.id)  # 404 if not ours
    picked = pick(
        period, start, end, timezone=store.timezone, max_days=ctx.settings.max_period_days
    )
    sorting = Sorting(checked_sort(csort, cdir), checked_sort(fsort, fdir))
    view = await load_dashboard(ctx.dashboards, store, picked, sorting)
    return partial(
        request,
        state,
        visitor,
        "_figures.html",
        {
            "view": view,
            "sorting": sorting,
            "columns": COLUMNS,
            "figures_url": figures_url(store_id, picked, sorting),
        },
    )


@router.get("/jobs")
async def jobs_fragment(
    request: Request,
    visitor: LiveVisitor,
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
    rows = await filtered_jobs(ctx.queue, stores, visitor.account.id, filters)
    return partial(request, state, visitor, "_jobs_table.html", {"filters": filters, "rows": rows})


@router.get("/jobs/{job_id}")
async def job_fragment(
    job_id: int, request: Request, visitor: LiveVisitor, state: State, ctx: Context
) -> Response:
    job = await ctx.queue.get(job_id)
    try:
        store = await ctx.stores.get(job.store_id, account_id=visitor.account.id)
    except NotFoundError:
        raise NotFoundError(f"job {job_id} does not exist") from None
    events = await ctx.queue.events(job.id)
    return partial(
        request, state, visitor, "_job_detail.html", {"job": job, "store": store, "events": events}
    )

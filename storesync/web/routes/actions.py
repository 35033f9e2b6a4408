"""What the forms do: sync (the seed's "Sincronizar"), retry and cancel jobs, store settings.

Every action needs the session's CSRF token (see :mod:`storesync.web.deps`). A plain form
post is answered with a redirect back to a page; the page's script asks for JSON instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request, Response

from storesync.errors import InputError, InvalidStateError, LimitExceededError, NotFoundError
from storesync.periods import Period
from storesync.queue import Job, JobStatus
from storesync.web.deps import CheckedForm, Context, Posted, State, safe_next
from storesync.web.picker import pick
from storesync.web.routes.common import done, not_found, page, url

router = APIRouter(include_in_schema=False)


def _job_json(job: Job) -> dict[str, object]:
    return {"id": job.id, "status": job.status.value, "store_id": job.store_id}


@router.post("/stores/{store_id}/sync")
async def sync(
    store_id: int, request: Request, posted: CheckedForm, state: State, ctx: Context
) -> Response:
    """Cache first: fresh figures need no job. Otherwise queue one (or get the one waiting);
    ``force`` queues a refresh whatever the cache holds."""
    account = posted.visitor.account
    try:
        store = await ctx.stores.get(store_id, account_id=account.id)
    except NotFoundError:
        return await not_found(
            request, state, ctx, posted.visitor, f"Store {store_id} does not exist."
        )
    chosen = {key: posted.get(key) for key in ("period", "start", "end")}
    try:
        picked = pick(
            chosen["period"] or None,
            chosen["start"] or None,
            chosen["end"] or None,
            timezone=store.timezone,
            max_days=ctx.settings.max_period_days,
        )
    except InputError as exc:
        # A plain form goes back to the dashboard of the period asked for: it says what is
        # wrong with it.
        return done(request, url(f"/stores/{store_id}", chosen), {"detail": str(exc)}, 422)
    period: Period = picked.period
    force = posted.get("force") in ("1", "true", "on")
    try:
        requested = await ctx.dashboards.request_sync(store, period, force=force)
    except LimitExceededError as exc:
        return done(
            request,
            url(f"/stores/{store_id}", {**picked.query(), "notice": "limited"}),
            {"detail": str(exc), "retry_after": exc.retry_after},
            429,
        )
    if requested.fresh:
        return done(
            request,
            url(f"/stores/{store_id}", {**picked.query(), "notice": "fresh"}),
            {"state": "fresh", "job": None},
        )
    assert requested.job is not None  # not fresh: a job was queued or found waiting
    return done(
        request,
        url(f"/stores/{store_id}", {**picked.query(), "notice": "queued"}),
        {"state": "queued", "created": requested.created, "job": _job_json(requested.job)},
        202,
    )


async def _owned_job(posted: Posted, ctx: Context, job_id: int) -> Job | None:
    try:
        job = await ctx.queue.get(job_id)
        await ctx.stores.get(job.store_id, account_id=posted.visitor.account.id)
    except NotFoundError:
        return None
    return job


@router.post("/jobs/{job_id}/retry")
async def retry(
    job_id: int, request: Request, posted: CheckedForm, state: State, ctx: Context
) -> Response:
    back = safe_next(posted.get("next") or f"/jobs/{job_id}")
    job = await _owned_job(posted, ctx, job_id)
    if job is None:
        return await not_found(request, state, ctx, posted.visitor, f"Job {job_id} does not exist.")
    try:
        again = await ctx.queue.retry(job.id)
    except InvalidStateError as exc:
        return done(request, back, {"detail": str(exc)}, 409)
    except LimitExceededError as exc:
        return done(request, back, {"detail": str(exc), "retry_after": exc.retry_after}, 429)
    except InputError as exc:  # a job queued before periods were checked
        return done(request, back, {"detail": str(exc)}, 422)
    return done(request, back, {"job": _job_json(again)})


@router.post("/jobs/{job_id}/cancel")
async def cancel(
    job_id: int, request: Request, posted: CheckedForm, state: State, ctx: Context
) -> Response:
    back = safe_next(posted.get("next") or f"/jobs/{job_id}")
    job = await _owned_job(posted, ctx, job_id)
    if job is None:
        return await not_found(request, state, ctx, posted.visitor, f"Job {job_id} does not exist.")
    try:
        stopped = await ctx.queue.cancel(job.id)
    except InvalidStateError as exc:
        return done(request, back, {"detail": str(exc)}, 409)
    return done(request, back, {"job": _job_json(stopped)})


@router.post("/stores/{store_id}/settings")
async def save_settings(
    store_id: int, request: Request, posted: CheckedForm, state: State, ctx: Context
) -> Response:
    """Change a store's name, time zone or credentials (blank credential fields keep theirs)."""
    account = posted.visitor.account
    try:
        store = await ctx.stores.get(store_id, account_id=account.id)
    except NotFoundError:
        return done(request, "/stores", {"detail": f"store {store_id} does not exist"}, 404)
    # The store rules (storesync.store_rules, applied by update) check every field before
    # anything is written. A credential field left blank, or only spaces, keeps the current one.
    changes = {
        "name": posted.get("name") or None,
        "timezone": posted.get("timezone") or None,
        "shopify_token": (posted.get("shopify_token") or "").strip() or None,
        "klaviyo_key": (posted.get("klaviyo_key") or "").strip() or None,
    }
    try:
        await ctx.stores.update(store.id, account_id=account.id, **changes)
    except InputError as exc:
        return await page(
            request,
            state,
            ctx,
            posted.visitor,
            "store_settings.html",
            {"store": store, "error": str(exc), "notice": None},
            status_code=422,
        )
    if changes["shopify_token"] or changes["klaviyo_key"]:
        await _retry_recent_failures(ctx, store.id)
    return done(request, f"/stores/{store_id}/settings?notice=saved", {"saved": True})


async def _retry_recent_failures(ctx: Context, store_id: int) -> None:
    """New credentials: the failures of the last day are worth another try at once."""
    failed = await ctx.queue.list_jobs(status=JobStatus.FAILED, store_id=store_id, limit=20)
    since = datetime.now(UTC) - timedelta(days=1)
    for job in failed:
        if job.completed_at is None or job.completed_at < since:
            continue
        try:
            await ctx.queue.retry(job.id)
        except InvalidStateError:
            continue  # a newer job of the same period is already waiting
        except LimitExceededError:
            return  # the account's syncs are at their cap: the rest can be retried later

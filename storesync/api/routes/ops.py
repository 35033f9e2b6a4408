"""``GET /healthz`` (no token: for load balancers) and ``GET /metrics`` (Prometheus).

``/metrics`` tells about every account's jobs and the providers' traffic: it answers the
``STORESYNC_METRICS_TOKEN`` (for a Prometheus scraper) or an admin-scope API token, and no
other token (403).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from storesync.api.deps import Bearer, ContextDep, bearer_token, resolve_caller
from storesync.api.errors import FORBIDDEN, INVALID, RATE_LIMITED, UNAUTHORIZED
from storesync.api.schemas import ErrorOut, Health
from storesync.queue.stats import queue_stats

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_model=Health,
    responses={
        **INVALID,
        503: {"model": ErrorOut, "description": "The database is unreachable."},
    },
    summary="Is the server up and its database reachable?",
)
async def healthz(ctx: ContextDep) -> Health | JSONResponse:
    try:
        async with ctx.database.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means "not healthy"
        return JSONResponse(
            {"detail": f"database unreachable: {type(exc).__name__}"}, status_code=503
        )
    return Health(status="ok", database=ctx.database.dialect, worker=ctx.worker_state)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        **UNAUTHORIZED,
        **FORBIDDEN,
        **INVALID,
        **RATE_LIMITED,
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
    },
    summary="Prometheus metrics of this process",
)
async def metrics(ctx: ContextDep, request: Request, credentials: Bearer) -> Response:
    token = bearer_token(credentials)
    expected = ctx.settings.metrics_token
    if expected is None or not hmac.compare_digest(
        token.encode(), expected.get_secret_value().encode()
    ):
        caller, _store = await resolve_caller(ctx, request, token)
        if not caller.is_admin:
            raise HTTPException(
                403,
                "/metrics needs an admin-scope token (`storesync tokens create --scope admin`) "
                "or STORESYNC_METRICS_TOKEN",
            )
    # Queue depth is refreshed here too, so a server without an embedded worker reports it.
    stats = await queue_stats(ctx.database, ctx.settings)
    for status in ("queued", "processing", "completed", "failed", "cancelled"):
        ctx.metrics.queue_depth.labels(status).set(getattr(stats, status))
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""``GET /healthz`` (no token: for load balancers) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from storesync.api.deps import ContextDep, CurrentAccount
from storesync.api.errors import INVALID, RATE_LIMITED, UNAUTHORIZED
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
        **INVALID,
        **RATE_LIMITED,
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
    },
    summary="Prometheus metrics of this process",
)
async def metrics(_account: CurrentAccount, ctx: ContextDep) -> Response:
    # Queue depth is refreshed here too, so a server without an embedded worker reports it.
    stats = await queue_stats(ctx.database, ctx.settings)
    for status in ("queued", "processing", "completed", "failed", "cancelled"):
        ctx.metrics.queue_depth.labels(status).set(getattr(stats, status))
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

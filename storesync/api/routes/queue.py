"""``GET /api/queue/stats``: the caller's account's jobs in the queue (counts, durations,
failure rate), the live workers and a diagnosis.

Other accounts' figures are not shown; the workers' host names and pids only to admin-scope
tokens (see :mod:`storesync.accounts`).
"""

from __future__ import annotations

from fastapi import APIRouter

from storesync.api.deps import ContextDep, CurrentCaller
from storesync.api.errors import API_ERRORS
from storesync.api.schemas import QueueStatsPublic
from storesync.queue.stats import queue_stats

router = APIRouter(prefix="/api/queue", tags=["queue"], responses=API_ERRORS)


@router.get("/stats", response_model=QueueStatsPublic, summary="Queue counts and live workers")
async def stats(caller: CurrentCaller, ctx: ContextDep) -> QueueStatsPublic:
    found = await queue_stats(ctx.database, ctx.settings, account_id=caller.account.id)
    return QueueStatsPublic.model_validate(found.to_json(with_hosts=caller.is_admin))

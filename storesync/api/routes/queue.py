"""``GET /api/queue/stats``: the shared queue's counts, durations, live workers, diagnosis.

The queue is shared by every account, so these are its global figures: what a caller needs
to understand why its job waits (how many are ahead, whether any worker is alive).
"""

from __future__ import annotations

from fastapi import APIRouter

from storesync.api.deps import ContextDep, CurrentAccount
from storesync.api.errors import API_ERRORS
from storesync.api.schemas import QueueStatsPublic
from storesync.queue.stats import queue_stats

router = APIRouter(prefix="/api/queue", tags=["queue"], responses=API_ERRORS)


@router.get("/stats", response_model=QueueStatsPublic, summary="Queue counts and live workers")
async def stats(_account: CurrentAccount, ctx: ContextDep) -> QueueStatsPublic:
    return QueueStatsPublic.model_validate(
        (await queue_stats(ctx.database, ctx.settings)).to_json()
    )

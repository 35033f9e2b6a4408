"""``GET /api/events``: server-sent events for the caller's account (see
:mod:`storesync.serving.streams`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from storesync.api.deps import ContextDep, CurrentCaller
from storesync.api.errors import API_ERRORS, Responses

router = APIRouter(prefix="/api", tags=["events"], responses=API_ERRORS)

_STREAM_DOC: Responses = {
    200: {
        "description": "An endless text/event-stream. First a `ready` event; then `job.queued`, "
        "`job.started`, `job.progress`, `job.completed`, `job.failed`, `job.retried`, "
        "`job.cancelled`, `cache.updated` and `cache.stale` events of the caller's stores, "
        "each with a JSON `data` line; a comment every 15 s keeps proxies from closing it. "
        "`resync` means events may have been missed (reload what is shown); `overflow` that "
        "the client fell too far behind and the stream ends (reconnect); `ended` that the "
        "token was revoked or expired and the stream ends.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses=_STREAM_DOC,
    summary="Live job and cache events of the caller's stores",
)
async def events(caller: CurrentCaller, ctx: ContextDep) -> StreamingResponse:
    async def token_usable() -> bool:
        return await ctx.tokens.usable(caller.token_id)

    account = caller.account
    return StreamingResponse(
        # A stream outlives its request's check: a revoked token's stream ends too.
        ctx.streams.stream(account.id, account.name, still_allowed=token_usable),
        media_type="text/event-stream",
        # No caching, and no buffering by proxies such as nginx: events must arrive at once.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

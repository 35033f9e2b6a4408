"""What every page route does: the queue panel beside the page, and URLs with queries."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from storesync.serving.context import AppContext
from storesync.web.deps import Visitor, WebState
from storesync.web.panel import queue_panel


def url(path: str, params: dict[str, Any] | None = None) -> str:
    """``path`` with the non-empty ``params`` as its query."""
    query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
    return f"{path}?{urlencode(query)}" if query else path


async def page(
    request: Request,
    state: WebState,
    ctx: AppContext,
    visitor: Visitor,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    """A full page: ``template`` with the visitor, the CSRF token and the queue panel."""
    panel = await queue_panel(ctx.database, ctx.settings, visitor.account)
    return state.renderer.response(
        request,
        template,
        {"visitor": visitor, "csrf": visitor.csrf, "panel": panel, "url": url, **context},
        status_code=status_code,
    )


def partial(
    request: Request, state: WebState, visitor: Visitor, template: str, context: dict[str, Any]
) -> HTMLResponse:
    """A fragment of a page, for the page's script to swap in."""
    return state.renderer.response(
        request, template, {"visitor": visitor, "csrf": visitor.csrf, "url": url, **context}
    )


def wants_json(request: Request) -> bool:
    """The page's script asks for JSON; a plain form post wants a redirect."""
    return "application/json" in request.headers.get("accept", "")


def done(
    request: Request, location: str, payload: dict[str, Any], status_code: int = 200
) -> Response:
    """JSON for the script, or a redirect to ``location`` for a plain form."""
    if wants_json(request):
        return JSONResponse(payload, status_code=status_code)
    return RedirectResponse(location, status_code=303)


async def not_found(
    request: Request, state: WebState, ctx: AppContext, visitor: Visitor, message: str
) -> Response:
    """A 404: the error page, or ``{"detail": message}`` for the page's script."""
    if wants_json(request):
        return JSONResponse({"detail": message}, status_code=404)
    return await page(
        request, state, ctx, visitor, "error.html", {"title": "Not found", "message": message}, 404
    )

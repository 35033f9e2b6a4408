"""The web dashboard: server-rendered pages beside the API, in the same app.

``install(app)`` adds them to an app assembled by :func:`storesync.app.create_app`:

- ``/sign-in`` (an API token, or a one-time link ``/sign-in/once/<secret>``), ``/sign-out``;
- ``/stores`` (last sync, freshness badge, Klaviyo budget left), ``/stores/{id}`` (the
  dashboard of a period, with the Sync button), ``/stores/{id}/settings``;
- ``/jobs`` (filters and each job's event log at ``/jobs/{id}``);
- the queue panel beside every page, kept live by ``/web/events`` (server-sent events);
- ``/static``: the stylesheet and the script, shipped in the package (no CDN).

Layers: ``session`` and ``signin`` (who is asking), ``deps`` (the routes' dependencies),
``dashboard``, ``overview``, ``panel``, ``jobs``, ``tables``, ``chart`` (what a page shows),
``format`` and ``picker`` (how), ``render`` (templates and headers), ``routes`` (HTTP).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from storesync.web.deps import CsrfRejected, SignInRequired, sign_in_url, web_state
from storesync.web.render import HERE, SECURITY_HEADERS, Renderer
from storesync.web.routes import actions, auth, live, pages


def install(app: FastAPI) -> None:
    """Add the web pages, their live fragments and ``/static`` to ``app``."""
    app.state.web_renderer = Renderer()
    for module in (auth, pages, actions, live):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(SignInRequired)
    async def to_sign_in(_request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(sign_in_url(exc.next_path), status_code=303)

    @app.exception_handler(CsrfRejected)
    async def refuse(request: Request, _exc: CsrfRejected) -> Response:
        message = (
            "This form did not carry its security token (it may have expired, or come from "
            "another site). Reload the page and try again."
        )
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"detail": message}, status_code=403)
        html = web_state(request).renderer.html(
            "refused.html", {"message": message, "path": request.url.path}
        )
        response = HTMLResponse(html, status_code=403)
        response.headers.update(SECURITY_HEADERS)
        return response


__all__ = ["install"]

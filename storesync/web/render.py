"""Jinja2 templates (autoescaped) and the headers every page is sent with.

Pages allow scripts, styles and images from this server only (no inline script, no CDN), may
not be framed, and are not stored by caches: they show an account's figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

import storesync
from storesync.periods import zone
from storesync.web import format as fmt
from storesync.web.picker import choices

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def environment() -> Environment:
    """The template environment: HTML escaped everywhere, unknown names an error."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        money=fmt.money,
        count=fmt.count,
        percent=fmt.percent,
        day=fmt.day,
        clock=fmt.clock,
        ago=fmt.ago,
    )
    env.globals.update(
        period_text=fmt.period,
        period_choices=choices(),
        tz=zone,
        version=storesync.__version__,
    )
    return env


class Renderer:
    """Renders a template into a response with the security headers."""

    def __init__(self, env: Environment | None = None) -> None:
        self.env = env or environment()

    def html(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(context)

    def response(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        context = {"request": request, "path": request.url.path, **context}
        response = HTMLResponse(self.html(name, context), status_code=status_code)
        response.headers.update(SECURITY_HEADERS)
        return response

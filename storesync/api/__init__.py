"""The HTTP API (FastAPI): cache-first dashboard reads, jobs, live events, Shopify webhooks.

``install(app)`` adds the ``/api`` routes and the error handlers to an app assembled by
:func:`storesync.app.create_app` (beside the web pages of :mod:`storesync.web`, which this
package never imports; what both use lives in :mod:`storesync.serving`).

Layout: ``routes/`` (one router per concern), :mod:`~storesync.api.deps` (dependencies as
types), :mod:`~storesync.api.schemas`, :mod:`~storesync.api.webhooks`,
:mod:`~storesync.api.limits` (request body limits) and :mod:`~storesync.api.errors`.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from storesync.api.deps import known_query_only
from storesync.api.errors import install_error_handlers
from storesync.api.routes import dashboard, events, jobs, ops, queue, stores, tokens, webhooks

#: The OpenAPI description of the app.
DESCRIPTION = """\
Cache-first Shopify and Klaviyo dashboard data, refreshed through a durable job queue.

Every `/api` route needs `Authorization: Bearer <token>` (`storesync tokens create --account
NAME`); a token sees only its account's stores and jobs. Errors are `{"detail": "..."}`.
"""


def install(app: FastAPI) -> None:
    """Add the API's error handlers and routes (``/api/...`` and the Shopify webhooks)."""
    install_error_handlers(app)
    for module in (stores, dashboard, jobs, queue, tokens, events, webhooks, ops):
        # Scoped to the API's own routes: pages added beside them keep their own rules.
        app.include_router(module.router, dependencies=[Depends(known_query_only)])


__all__ = ["DESCRIPTION", "install"]

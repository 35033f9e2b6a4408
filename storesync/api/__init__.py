"""The HTTP API (FastAPI): cache-first dashboard reads, jobs, live events, Shopify webhooks.

Layout: :mod:`~storesync.api.app` (the factory and its lifespan), ``routes/`` (one router per
concern), :mod:`~storesync.api.deps` (dependencies as types), :mod:`~storesync.api.schemas`,
:mod:`~storesync.api.auth`, :mod:`~storesync.api.sse`, :mod:`~storesync.api.webhooks`,
:mod:`~storesync.api.errors` and :mod:`~storesync.api.server` (uvicorn).
"""

from storesync.api.app import create_app

__all__ = ["create_app"]

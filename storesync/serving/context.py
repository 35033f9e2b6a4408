"""What the API and web routes share: one :class:`AppContext` per running app, built by its
lifespan (:mod:`storesync.app`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, cast

from starlette.requests import Request

from storesync.dashboards import Dashboards
from storesync.metrics import Metrics
from storesync.queue import JobQueue
from storesync.serving.ratelimit import RequestRateLimiter
from storesync.serving.streams import StreamHub
from storesync.serving.tokens import TokenAuthority
from storesync.settings import Settings
from storesync.storage.engine import Database
from storesync.stores import StoreDirectory


@dataclass(slots=True)
class AppContext:
    """The services of one app. Built once at start-up, never at import time."""

    settings: Settings
    database: Database
    queue: JobQueue
    stores: StoreDirectory
    metrics: Metrics
    tokens: TokenAuthority
    streams: StreamHub
    #: API requests a minute per account (see storesync.serving.ratelimit).
    rate_limits: RequestRateLimiter
    #: The embedded worker's task, or None when separate worker processes do the work.
    worker_task: asyncio.Task[None] | None = None
    embedded_worker: bool = False

    @property
    def dashboards(self) -> Dashboards:
        """The dashboard reads and sync requests (the refresh rules), for the API and the web."""
        return Dashboards(self.database, self.queue)

    @property
    def worker_state(self) -> Literal["running", "stopped", "disabled"]:
        if not self.embedded_worker:
            return "disabled"
        if self.worker_task is None or self.worker_task.done():
            return "stopped"
        return "running"


def context_of(request: Request) -> AppContext:
    """The context of the app serving ``request`` (its lifespan set it at start-up); a
    dependency of the API's and the pages' routes. ``Request`` is imported at run time:
    FastAPI reads the annotation to know what to pass."""
    return cast(AppContext, request.app.state.context)

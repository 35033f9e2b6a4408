"""The app factory: ``create_app(settings)`` builds a FastAPI app; nothing exists before.

Its lifespan connects to the database, migrates it, starts the PostgreSQL event relay (so that
events raised by workers on any machine reach this server's SSE clients) and, for the
single-machine default, runs a worker with the scheduler in the same event loop. On shutdown
it ends the event streams, lets the worker finish or hand back its jobs, and disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI

import storesync
from storesync import web
from storesync.api.auth import TokenAuthority
from storesync.api.context import ApiContext
from storesync.api.deps import known_query_only
from storesync.api.errors import install_error_handlers
from storesync.api.limits import BodyLimitMiddleware, route_limits
from storesync.api.ratelimit import RequestRateLimiter
from storesync.api.routes import dashboard, events, jobs, ops, queue, stores, tokens, webhooks
from storesync.api.sse import StoreOwners, StreamHub
from storesync.api.throttle import FailureThrottle
from storesync.metrics import Metrics
from storesync.queue import JobQueue
from storesync.settings import Settings
from storesync.storage import connect, migrate
from storesync.storage.crypto import SecretBox
from storesync.storage.listen import event_relay
from storesync.stores import StoreDirectory
from storesync.sync.services import sync_services
from storesync.worker import Worker

log = logging.getLogger(__name__)

DESCRIPTION = """\
Cache-first Shopify and Klaviyo dashboard data, refreshed through a durable job queue.

Every `/api` route needs `Authorization: Bearer <token>` (`storesync tokens create --account
NAME`); a token sees only its account's stores and jobs. Errors are `{"detail": "..."}`.
"""


def create_app(
    settings: Settings, *, embedded_worker: bool = True, scheduler: bool = True
) -> FastAPI:
    """The storesync HTTP API; with ``embedded_worker`` it also runs syncs and (unless
    ``scheduler`` is false) takes part in scheduling refreshes."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            context = await _start(
                settings, stack, embedded_worker=embedded_worker, scheduler=scheduler
            )
            app.state.context = context
            try:
                yield
            finally:
                context.streams.close_all()

    app = FastAPI(
        title="storesync",
        version=storesync.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (stores, dashboard, jobs, queue, tokens, events, webhooks, ops):
        # Scoped to the API's own routes: pages added beside them keep their own rules.
        app.include_router(module.router, dependencies=[Depends(known_query_only)])
    web.install(app)  # the dashboard pages and /static (storesync.web)
    # Before anything reads a body: oversized ones are refused while they stream in.
    app.add_middleware(BodyLimitMiddleware, limits=route_limits(settings))
    return app


async def _start(
    settings: Settings, stack: AsyncExitStack, *, embedded_worker: bool, scheduler: bool
) -> ApiContext:
    """Connect, migrate and start the background parts; ``stack`` undoes it all in reverse."""
    database = connect(settings)
    stack.push_async_callback(database.dispose)
    await migrate(database)
    metrics = Metrics()
    box = SecretBox.from_settings(settings)
    context = ApiContext(
        settings=settings,
        database=database,
        queue=JobQueue(database, settings),
        stores=StoreDirectory(
            database,
            box,
            extra_hosts=settings.shop_extra_hosts,
            max_stores_per_account=settings.max_stores_per_account,
        ),
        metrics=metrics,
        tokens=TokenAuthority(
            database,
            throttle=FailureThrottle(
                limit=settings.auth_failure_limit,
                window_seconds=settings.auth_failure_window_seconds,
            ),
        ),
        streams=StreamHub(database, StoreOwners(database)),
        rate_limits=RequestRateLimiter(settings.api_requests_per_minute),
        embedded_worker=embedded_worker,
    )
    # Events of workers on any machine reach this server's streams through NOTIFY, and a
    # reconnect tells the streams that some may have been lost.
    relay = event_relay(database, on_reconnect=context.streams.resync_all)
    if relay is not None:
        await relay.start()
        stack.push_async_callback(relay.stop)
    if embedded_worker:
        services = await stack.enter_async_context(sync_services(database, settings, metrics))
        # The API queues through the worker's own JobQueue, so that on SQLite (no NOTIFY) a
        # job queued by a request wakes the embedded worker at once.
        context.queue = services.queue
        worker = Worker(
            services, concurrency=settings.max_concurrent_jobs, schedule=scheduler, metrics=metrics
        )
        context.worker_task = asyncio.create_task(worker.run(), name="embedded-worker")
        context.worker_task.add_done_callback(_report_worker_end)
        stack.push_async_callback(_stop_worker, worker, context.worker_task)
    return context


def _report_worker_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the embedded worker stopped", exc_info=task.exception())


async def _stop_worker(worker: Worker, task: asyncio.Task[None]) -> None:
    worker.stop()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await task  # a failure was logged when it happened

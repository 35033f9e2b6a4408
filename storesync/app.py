"""The app factory: ``create_app(settings)`` assembles the one app that serves the API
(:mod:`storesync.api`), the Shopify webhooks and the web pages (:mod:`storesync.web`); nothing
exists before. The API and the pages never import each other: this is the one place that
wires them, their shared :class:`~storesync.serving.context.AppContext`, the body limits and
the lifespan.

The lifespan connects to the database, migrates it, starts the PostgreSQL event relay (so that
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

from fastapi import FastAPI

import storesync
from storesync import api, web
from storesync.api.limits import BodyLimitMiddleware, route_limits
from storesync.metrics import Metrics
from storesync.queue import JobQueue
from storesync.serving.context import AppContext
from storesync.serving.ratelimit import RequestRateLimiter
from storesync.serving.streams import StoreOwners, StreamHub
from storesync.serving.throttle import FailureThrottle
from storesync.serving.tokens import TokenAuthority
from storesync.settings import Settings
from storesync.storage import connect, migrate
from storesync.storage.crypto import SecretBox
from storesync.storage.listen import event_relay
from storesync.stores import StoreDirectory
from storesync.sync.services import sync_services
from storesync.worker import Worker

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, *, embedded_worker: bool = True, scheduler: bool = True
) -> FastAPI:
    """The storesync app: the API and the web pages; with ``embedded_worker`` it also runs
    syncs and (unless ``scheduler`` is false) takes part in scheduling refreshes."""

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
        description=api.DESCRIPTION,
        lifespan=lifespan,
    )
    api.install(app)  # the error handlers, /api and the webhooks (storesync.api)
    web.install(app)  # the dashboard pages and /static (storesync.web)
    # Before anything reads a body: oversized ones are refused while they stream in.
    app.add_middleware(BodyLimitMiddleware, limits=route_limits(settings))
    return app


async def _start(
    settings: Settings, stack: AsyncExitStack, *, embedded_worker: bool, scheduler: bool
) -> AppContext:
    """Connect, migrate and start the background parts; ``stack`` undoes it all in reverse."""
    database = connect(settings)
    stack.push_async_callback(database.dispose)
    await migrate(database)
    metrics = Metrics()
    box = SecretBox.from_settings(settings)
    context = AppContext(
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

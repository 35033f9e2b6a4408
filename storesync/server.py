"""Serving the app with uvicorn (``storesync serve``, the tests and the benchmark)."""

from __future__ import annotations

import asyncio
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from storesync.app import create_app
from storesync.serving.context import AppContext
from storesync.settings import Settings

#: After this many seconds of shutdown, connections still open are closed regardless.
GRACEFUL_SHUTDOWN_SECONDS = 10


class ApiServer(uvicorn.Server):
    """uvicorn's server that also ends the event streams when told to stop.

    uvicorn waits for open connections to finish before it runs the app's lifespan shutdown,
    and an SSE stream never finishes on its own: without this a stop would wait for the
    graceful-shutdown timeout whenever a dashboard is open.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Called from a signal handler: hand the work to the event loop.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.end_streams)
        super().handle_exit(sig, frame)

    def end_streams(self) -> None:
        app = self.config.app
        context = getattr(getattr(app, "state", None), "context", None)
        if isinstance(context, AppContext):
            context.streams.close_all()


def build_server(app: FastAPI, *, host: str, port: int, access_log: bool = True) -> ApiServer:
    """A server for ``app``; its own logging setup is left to :mod:`storesync.logs`."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return ApiServer(config)


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    embedded_worker: bool = True,
    scheduler: bool = True,
    access_log: bool = True,
) -> None:
    """Run the API (and, by default, a worker) until SIGINT or SIGTERM."""
    app = create_app(settings, embedded_worker=embedded_worker, scheduler=scheduler)
    build_server(app, host=host, port=port, access_log=access_log).run()

"""Serving the simulator over TCP: blocking (:func:`serve`) or in a background thread."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import uvicorn

from storesync.simulator.app import Simulator
from storesync.simulator.config import SimulatorConfig

_DROP_NOTE = "ASGI callable should return None"


class _QuietDrops(logging.Filter):
    """Hide uvicorn's complaint about the value the app returns to drop a connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_DROP_NOTE)


def _quiet() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def _server(simulator: Simulator, host: str, port: int, log_level: str) -> uvicorn.Server:
    _quiet()
    config = uvicorn.Config(
        simulator.app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="off",
        timeout_graceful_shutdown=1,  # stalled requests must not hold up a shutdown
    )
    return uvicorn.Server(config)


def serve(host: str, port: int, config: SimulatorConfig, *, log_level: str = "warning") -> None:
    """Serve a new simulator with ``config`` on ``host:port`` until interrupted (blocking)."""
    _server(Simulator(config), host, port, log_level).run()


@contextlib.contextmanager
def serve_in_thread(
    simulator: Simulator, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
) -> Iterator[str]:
    """Serve ``simulator`` in a daemon thread; yields the base URL (``http://host:port``).

    ``port=0`` picks a free port. The server stops when the block exits.
    """
    server = _server(simulator, host, port, log_level)
    thread = threading.Thread(target=server.run, name="storesync-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the simulator server did not start")
        time.sleep(0.01)
    sockets = [s for srv in server.servers for s in srv.sockets]
    bound_port = sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)

"""Injected latency and faults, drawn from a seeded generator for reproducible runs.

Each provider request first waits the configured latency, then waits while ``stall`` is on,
then draws once: ``error`` (a 5xx), ``throttle`` (Shopify THROTTLED / Klaviyo 429; the
provider module renders it), ``timeout`` or ``drop``.

How a timeout and a drop look depends on the transport, because the client's own timeout only
exists on a real connection:

- over TCP (uvicorn and other servers that set ``asgi.spec_version``), a timeout sleeps
  ``timeout_seconds`` and then answers normally (a client with a shorter timeout has given
  up), or with ``hang`` waits until the client disconnects; a drop closes the connection
  without a response (the ASGI callable returns a value, which uvicorn answers by closing
  the transport);
- in-process (``httpx.ASGITransport``), a timeout sleeps ``timeout_seconds`` and raises
  ``httpx.ReadTimeout``, and a drop raises ``httpx.RemoteProtocolError``: the exceptions an
  ``httpx`` client would raise over the network.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, MutableMapping
from typing import Any

import httpx
from starlette.requests import Request

from storesync.simulator.config import SimulatorConfig
from storesync.simulator.requestlog import current_record


class DropConnection(Exception):
    """Raised by a handler to close the connection without answering."""


def is_network(scope: MutableMapping[str, Any]) -> bool:
    """True when a real server (not ``httpx.ASGITransport``) runs the app."""
    return "spec_version" in scope.get("asgi", {})


class FaultInjector:
    """Draws faults and sleeps latency according to the live configuration."""

    def __init__(self, config: Callable[[], SimulatorConfig]) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._seed: int | None = None
        self.rng = random.Random(0)  # noqa: S311 - reproducible faults, not secrets

    def _generator(self) -> random.Random:
        seed = self._config().faults.seed
        if seed != self._seed:  # a new seed restarts the sequence
            self._seed = seed
            self.rng.seed(seed)
        return self.rng

    def reseed(self) -> None:
        """Restart the fault sequence from the configured seed."""
        with self._lock:
            self._seed = None

    def draw(self, provider: str) -> str | None:
        """The fault for one request of ``provider``, or ``None``."""
        faults = self._config().faults
        if provider not in faults.providers:
            return None
        rates = (faults.error_rate, faults.throttle_rate, faults.timeout_rate, faults.drop_rate)
        if not any(rates):
            return None
        with self._lock:
            draw = self._generator().random()
        for kind, rate in zip(("error", "throttle", "timeout", "drop"), rates, strict=True):
            if draw < rate:
                return kind
            draw -= rate
        return None

    def pick(self, options: int) -> int:
        """A seeded choice among ``options`` variants of a fault response."""
        with self._lock:
            return self._generator().randrange(options)

    def bulk_fails(self) -> bool:
        rate = self._config().faults.bulk_failure_rate
        if rate <= 0:
            return False
        with self._lock:
            return self._generator().random() < rate

    async def before(self, request: Request, provider: str) -> str | None:
        """Latency, stall and the fault draw for one request.

        Returns ``"error"`` or ``"throttle"`` for the caller to render, ``"timeout"`` after
        the delay when the request should then be answered normally, or ``None``; raises
        :class:`DropConnection` or the in-process ``httpx`` exceptions. The fault drawn is
        noted on the request's log record.
        """
        await request.body()  # read first: disconnect checks must not eat the body
        config = self._config()
        delay = config.latency.fixed_ms
        if config.latency.jitter_ms > 0:
            with self._lock:
                delay += self._generator().uniform(0, config.latency.jitter_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        while self._config().faults.stall:
            if not await _wait(request, 0.05):
                raise DropConnection
        kind = self.draw(provider)
        current_record(request.scope).fault = kind
        if kind == "drop":
            raise DropConnection
        if kind == "timeout":
            seconds = self._config().faults.timeout_seconds
            if not is_network(request.scope):
                await asyncio.sleep(seconds)
                raise httpx.ReadTimeout(
                    "simulated timeout: no response within the client's timeout"
                )
            if self._config().faults.hang:
                seconds = 24 * 3600.0  # until the client gives up
            if not await _wait(request, seconds):
                raise DropConnection  # the client left; nobody reads the answer
        return kind


async def _wait(request: Request, seconds: float) -> bool:
    """Sleep up to ``seconds``; False as soon as a network client disconnects."""
    if not is_network(request.scope):
        await asyncio.sleep(seconds)
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(0.05, left))
        if await request.is_disconnected():
            return False
    return True

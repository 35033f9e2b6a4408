"""What every queue benchmark needs: worker processes, a scratch database, timing, the machine.

Workers are OS processes started with ``spawn`` (each its own interpreter, event loop and
database connections, as in production). They talk to the parent over one multiprocessing queue
of tuples whose first item says what they are:

- ``("ready", worker)``: connected and waiting for the start signal;
- ``("started", at)``: the worker's first job started (claimed) at ``time.time()`` = ``at``;
- ``("done", count, at)``: ``count`` more jobs completed, the last at ``time.time()`` = ``at``;
- ``("claimed", [(job_id, at), ...])``: jobs claimed (or started) at ``at``;
- ``("latency", seconds)``: a job started this long after its enqueue began;
- ``("claims", calls, empty)``: on exit, how many claims a storesync worker made (and how many
  found nothing);
- ``("error", text)``: the worker crashed.

``time.time()`` is comparable across processes on one machine, which is what lets the parent
subtract an enqueue instant from a claim instant recorded elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import platform
import queue
import socket
import sqlite3
import statistics
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from typing import Any

import asyncpg

READY_TIMEOUT = 60.0

WorkerTarget = Callable[..., None]


@dataclass
class Fleet:
    """Worker processes sharing a start signal, a stop signal and a results queue."""

    processes: Sequence[multiprocessing.process.BaseProcess]
    results: multiprocessing.Queue[tuple[Any, ...]]
    go: Event
    stop: Event
    pending: list[tuple[Any, ...]] = field(default_factory=list)
    first_start: float = float("inf")

    @classmethod
    def start(cls, target: WorkerTarget, count: int, *args: Any) -> Fleet:
        """Start ``count`` processes running ``target(index, go, stop, results, *args)``."""
        ctx = multiprocessing.get_context("spawn")
        results: multiprocessing.Queue[tuple[Any, ...]] = ctx.Queue()
        go, stop = ctx.Event(), ctx.Event()
        processes = [
            ctx.Process(target=target, args=(i, go, stop, results, *args), daemon=True)
            for i in range(count)
        ]
        for process in processes:
            process.start()
        return cls(processes, results, go, stop)

    async def wait_ready(self) -> None:
        ready = 0
        while ready < len(self.processes):
            message = await self.next(READY_TIMEOUT)
            if message[0] == "ready":
                ready += 1
            else:
                self.pending.append(message)

    async def next(self, timeout: float) -> tuple[Any, ...]:
        """The next message (raises when a worker crashed or nothing came in ``timeout``)."""
        if self.pending:
            return self.pending.pop(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                message = await asyncio.to_thread(self.results.get, True, 0.2)
            except queue.Empty:
                if loop.time() > deadline:
                    raise TimeoutError(f"no word from the workers in {timeout:g} s") from None
                dead = [p for p in self.processes if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"worker exited with code {dead[0].exitcode}") from None
                continue
            if message[0] == "error":
                raise RuntimeError(f"a worker failed:\n{message[1]}")
            if message[0] == "started":
                self.first_start = min(self.first_start, message[1])
                continue
            return message

    def earliest_start(self) -> float:
        """When the first job of this run started, after reading what is already sent."""
        with contextlib.suppress(queue.Empty):
            while True:
                message = self.results.get(True, 0.05)
                if message[0] == "started":
                    self.first_start = min(self.first_start, message[1])
                else:
                    self.pending.append(message)
        if self.first_start == float("inf"):
            raise RuntimeError("no worker reported its first job")
        return self.first_start

    def close(self, timeout: float = 15.0) -> list[tuple[Any, ...]]:
        """Stop the workers; returns the messages they sent on the way out."""
        self.stop.set()
        self.go.set()  # a worker still waiting to start must see the stop too
        last: list[tuple[Any, ...]] = []
        for process in self.processes:
            deadline = time.monotonic() + timeout
            while process.is_alive() and time.monotonic() < deadline:
                last.extend(self._read_waiting())  # a full pipe would block its exit
                process.join(0.1)
            if process.is_alive():
                process.terminate()
                process.join(5)
        return [*last, *self._read_waiting()]

    def _read_waiting(self) -> list[tuple[Any, ...]]:
        messages = []
        with contextlib.suppress(queue.Empty):
            while True:
                messages.append(self.results.get_nowait())
        return messages


def run_worker(
    index: int, results: multiprocessing.Queue[tuple[Any, ...]], body: Awaitable[None]
) -> None:
    """Run a worker's coroutine, reporting a crash to the parent instead of dying silently."""
    try:
        asyncio.run(body)  # type: ignore[arg-type]
    except BaseException:
        results.put(("error", f"worker {index}: {traceback.format_exc()}"))
        raise


async def fan_out(count: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> None:
    """``call(i)`` for i in range(count), ``concurrency`` calls in flight at a time."""
    indexes = iter(range(count))

    async def caller() -> None:
        for i in indexes:
            await call(i)

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def wait_event(event: Event) -> None:
    """Await a multiprocessing event without blocking the loop."""
    while not await asyncio.to_thread(event.wait, 0.5):
        pass


# -- numbers -----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server started next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(samples: list[float], pct: int) -> float:
    """The ``pct``-th percentile (inclusive method), in the samples' unit."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def rate(jobs: int, seconds: float) -> float:
    return jobs / seconds if seconds > 0 else float("nan")


# -- PostgreSQL scratch databases ----------------------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def admin(admin_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def recreate(admin_url: str, name: str, template: str | None = None) -> str:
    """Drop and create database ``name`` (from ``template`` when given); returns its URL."""
    create = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    await admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', create)
    return database_url(admin_url, name)


async def drop(admin_url: str, *names: str) -> None:
    await admin(admin_url, *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names))


async def poll_until(check: Callable[[], Awaitable[bool]], interval: float, timeout: float) -> None:
    """Await ``check()`` every ``interval`` seconds until it is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError(f"not done after {timeout:g} s")
        await asyncio.sleep(interval)


# -- the machine ---------------------------------------------------------------------------


async def machine(admin_url: str) -> dict[str, str]:
    """What the figures depend on: cores, memory, database versions, settings that matter."""
    conn = await asyncpg.connect(admin_url)
    try:
        version = await conn.fetchval("SHOW server_version")
        shown = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("shared_buffers", "synchronous_commit", "max_connections")
        }
    finally:
        await conn.close()
    memory = "?"
    with contextlib.suppress(OSError):
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
            memory = f"{kib / 1024 / 1024:.1f} GiB"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), cpu)
    settings = ", ".join(f"{k}={v}" for k, v in shown.items())
    return {
        "cpus": f"{os.cpu_count()} ({cpu})",
        "memory": memory,
        "postgresql": f"{version} ({settings})",
        "sqlite": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "load": load(),
    }


def load() -> str:
    """The load average: other work on the machine skews every figure here."""
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"

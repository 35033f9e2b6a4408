"""Real processes for end-to-end tests: the simulator, workers and CLI calls over TCP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.pool import NullPool

from storesync.simulator import SimStore, SimulatorConfig, WindowLimit, generate_stores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fast_stores(count: int, *, seed: int = 7, orders_per_day: float = 20.0) -> list[SimStore]:
    """Stores whose Shopify bucket refills fast, so tests wait on nothing but the work."""
    return [
        dataclasses.replace(
            store,
            orders_per_day=orders_per_day,
            bucket_size=20_000.0,
            restore_rate=10_000.0,
            history_days=200,
        )
        for store in generate_stores(count, seed=seed)
    ]


def fast_config(stores: list[SimStore]) -> SimulatorConfig:
    """A simulator whose Klaviyo report windows allow many syncs a minute (the real 2 a
    minute per account would make every multi-job test last minutes)."""
    config = SimulatorConfig(stores=stores)
    limits = dataclasses.replace(config.klaviyo_limits, reports=WindowLimit(20, 600, 225))
    return dataclasses.replace(config, klaviyo_limits=limits)


@dataclasses.dataclass
class SimulatorProcess:
    """A ``storesync simulator`` subprocess and how to reach it."""

    url: str
    process: subprocess.Popen[bytes]
    config: SimulatorConfig

    @property
    def env(self) -> dict[str, str]:
        return {
            "STORESYNC_SHOPIFY_BASE_URL": f"{self.url}/shops/{{shop}}",
            "STORESYNC_KLAVIYO_BASE_URL": self.url,
        }

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> Any:
        response = httpx.post(f"{self.url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get("/_sim/requests", limit=1_000_000, **filters)[
            "requests"
        ]
        return found

    def truth(self, shop: str, start: str, end: str) -> dict[str, Any]:
        truth: dict[str, Any] = self.get(f"/_sim/truth/{shop}", start=start, end=end)
        return truth


@contextmanager
def run_simulator(config: SimulatorConfig, tmp_path: Path) -> Iterator[SimulatorProcess]:
    """Start ``storesync simulator`` with ``config`` on a free port; stop it afterwards."""
    config_file = tmp_path / f"simulator-{time.monotonic_ns()}.json"
    config_file.write_text(json.dumps(config.to_json()))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "storesync", "simulator", "--port", str(port),
         "--config", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_sim/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.1)
        yield SimulatorProcess(url, process, config)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def start_worker(
    env: dict[str, str], *args: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """A ``storesync worker`` subprocess (its log goes to ``log`` when given)."""
    output = open(log, "ab") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "storesync", "worker", *args],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Send ``sig`` and wait; kill after ``timeout``. Returns the exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def logged_port(log: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """The port a ``storesync serve --port 0`` says it listens on, read from its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", log.read_text())
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise TimeoutError(f"{process.args} did not start listening within {timeout} s")


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Wait until ``url`` answers without a server error (fails if ``process`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def wait_for(predicate: Any, *, timeout: float = 60, interval: float = 0.2, what: str = "") -> Any:
    """Poll ``predicate()`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


def base_env(
    db_url: str, data_dir: Path, simulator: SimulatorProcess, **extra: str
) -> dict[str, str]:
    """The environment of a storesync process in a test: database, simulator, fast timings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORESYNC_")}
    env.update(
        STORESYNC_DATABASE_URL=db_url,
        STORESYNC_DATA_DIR=str(data_dir),
        STORESYNC_SECRET_KEY="e2e-secret-key",
        STORESYNC_POLL_INTERVAL_SECONDS="0.2",
        STORESYNC_RETRY_BASE_SECONDS="0.5",
        # The simulator's report windows are widened to match (see fast_config).
        STORESYNC_KLAVIYO_REPORTS_PER_SECOND="20",
        STORESYNC_KLAVIYO_REPORTS_PER_MINUTE="600",
        COLUMNS="200",
        **simulator.env,
    )
    env.update(extra)
    return env


def read_jobs(db_url: str) -> list[dict[str, Any]]:
    """Every job as ``storesync jobs --json`` shows it, read directly (fast, for polling)."""
    from storesync.queue import JobQueue
    from storesync.settings import Settings
    from storesync.storage import connect

    async def main() -> list[dict[str, Any]]:
        settings = Settings(database_url=db_url)
        database = connect(settings, poolclass=NullPool)
        try:
            found = await JobQueue(database, settings).list_jobs(limit=100_000)
            return [job.to_json() for job in found]
        finally:
            await database.dispose()

    return asyncio.run(main())


def read_job(db_url: str, job_id: int) -> dict[str, Any]:
    return next(j for j in read_jobs(db_url) if j["id"] == job_id)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def restart_postgres(down_seconds: float = 0) -> None:
    """Restart the machine's PostgreSQL cluster, down for ``down_seconds`` at least when given
    (tests doing it are marked ``serial``: it cuts every test's connections)."""
    version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True, check=True)
    cluster = ["pg_ctlcluster", "--skip-systemctl-redirect", version.stdout.split()[-1], "main"]
    if not down_seconds:
        subprocess.run([*cluster, "restart"], check=True, timeout=120)
        return
    subprocess.run([*cluster, "stop"], check=True, timeout=120)
    try:
        time.sleep(down_seconds)
    finally:
        subprocess.run([*cluster, "start"], check=True, timeout=120)

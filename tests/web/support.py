"""What the browser tests drive: a real ``storesync serve`` (or ``demo``) process, the
simulator, Debian's Chromium through Playwright, and a few in-process writes to the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from storesync.accounts import create_token
from storesync.settings import Settings
from storesync.simulator import LatencyConfig, SimulatorConfig, demo_stores
from storesync.storage import connect, migrate
from storesync.storage.crypto import SecretBox
from storesync.stores import StoreDirectory
from tests.harness import SimulatorProcess, base_env, fast_config, logged_port, wait_until_up
from tests.harness import stop as harness_stop

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Where the demo test photographs the pages: a scratch directory, or the README's
#: docs/screenshots with ``make screenshots`` (so a test run leaves the checkout unchanged).
SCREENSHOTS = Path(
    os.environ.get("SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "storesync-screenshots"
)

#: Records, in the page, every progress the queue panel showed for a running job (the panel
#: is swapped in by the page's script; a test reads ``window.__progress`` afterwards).
PROGRESS_RECORDER = """
window.__progress = [];
new MutationObserver(() => {
  document.querySelectorAll('#queue-panel [data-job-state="processing"]').forEach((item) => {
    const bar = item.querySelector('progress');
    window.__progress.push({
      job: Number(item.dataset.jobId), store: Number(item.dataset.storeId),
      value: bar ? Number(bar.value) : null,
    });
  });
}).observe(document, {childList: true, subtree: true});
"""


def simulator_config() -> SimulatorConfig:
    """The demo's three stores with roomy Shopify buckets and Klaviyo report windows, and a
    little latency, so that a month's sync takes a second or two: long enough to watch its
    progress, short enough for the suite."""
    stores = [
        dataclasses.replace(s, bucket_size=20_000.0, restore_rate=10_000.0) for s in demo_stores()
    ]
    return dataclasses.replace(fast_config(stores), latency=LatencyConfig(fixed_ms=40.0))


def money(amount: str | Decimal, symbol: str) -> str:
    """The amount as the dashboard must write it, worked out independently of storesync."""
    value = Decimal(amount).quantize(Decimal("0.01"))
    return f"{symbol}{value:,.2f}"


@dataclass
class Server:
    """A ``storesync serve`` subprocess and its database."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop(self.process)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Stop a server the way Ctrl-C does."""
    harness_stop(process, signal.SIGINT, timeout)


@dataclass
class Deployment:
    """One database, the processes started on it, and in-process helpers to fill it."""

    db_url: str
    data_dir: Path
    simulator: SimulatorProcess
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings(
            database_url=self.db_url,
            data_dir=self.data_dir,
            secret_key="e2e-secret-key",  # type: ignore[arg-type]  # what base_env sets
        )

    def env(self) -> dict[str, str]:
        return base_env(
            self.db_url,
            self.data_dir,
            self.simulator,
            STORESYNC_SYNC_CHUNK_DAYS="7",
            STORESYNC_SHUTDOWN_GRACE_SECONDS="1",
            **self.extra_env,
        )

    def spawn(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.data_dir / f"{name}-{len(self.processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "storesync", *args],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process, log

    def serve(self, *args: str) -> Server:
        """``storesync serve`` on a port it picks itself; returns once it answers."""
        process, log = self.spawn("serve", "serve", "--port", "0", "--no-access-log", *args)
        port = logged_port(log, process)
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/healthz", process)
        return Server(url, process, log)

    def worker(self) -> subprocess.Popen[bytes]:
        return self.spawn("worker", "worker", "--no-scheduler")[0]

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            stop(process)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.data_dir.glob("*.log")))

    # -- data, written in-process through storesync's own modules ------------------------

    def add_demo_stores(self, account: str) -> dict[str, int]:
        """The simulator's stores in ``account``: shop domain → store id."""
        return run_async(self._add_stores(account))  # type: ignore[no-any-return]

    async def _add_stores(self, account: str) -> dict[str, int]:
        database = connect(self.settings)
        try:
            await migrate(database)
            directory = StoreDirectory(database, SecretBox.from_settings(self.settings))
            ids = {}
            for spec in self.simulator.config.stores:
                store = await directory.add(
                    name=spec.name,
                    shopify_domain=spec.shop_domain,
                    shopify_token=spec.shopify_token,
                    klaviyo_key=spec.klaviyo_private_key,
                    timezone=spec.timezone,
                    account=account,
                    currency=spec.currency,
                )
                ids[spec.shop_domain] = store.id
            return ids
        finally:
            await database.dispose()

    def add_store(self, account: str, name: str, domain: str) -> int:
        """A store that no simulator knows (its syncs would fail): for pages only."""

        async def add(database: Any) -> int:
            directory = StoreDirectory(database, SecretBox.from_settings(self.settings))
            store = await directory.add(
                name=name,
                shopify_domain=domain,
                shopify_token="shpat_unused",
                klaviyo_key=None,
                timezone="UTC",
                account=account,
            )
            return store.id

        return self.run(add)  # type: ignore[no-any-return]

    def token(self, account: str) -> str:
        async def make() -> str:
            database = connect(self.settings)
            try:
                return await create_token(database, account)
            finally:
                await database.dispose()

        return run_async(make())  # type: ignore[no-any-return]

    def run(self, coroutine_factory: Any) -> Any:
        """Run ``coroutine_factory(database)`` against this deployment's database."""

        async def main() -> Any:
            database = connect(self.settings)
            try:
                return await coroutine_factory(database)
            finally:
                await database.dispose()

        return run_async(main())


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` to its end in a thread of its own: Playwright's sync API keeps an
    event loop running in the test's thread, where ``asyncio.run`` is not allowed."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")

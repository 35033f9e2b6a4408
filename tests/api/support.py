"""Processes the API tests run against: the simulator, ``storesync serve`` and ``worker``.

Everything is a real OS process spoken to over real HTTP, as in production; the simulator
stands in for Shopify and Klaviyo and nothing else.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from storesync.accounts import Scope, create_token
from storesync.cache import KLAVIYO, SHOPIFY, write_rows
from storesync.periods import Period
from storesync.providers.figures import DailySales, KlaviyoFigures, ShopifyFigures
from storesync.settings import Settings
from storesync.storage import connect
from storesync.storage.crypto import SecretBox
from storesync.stores import StoreDirectory
from tests.cli.helpers import cli_env
from tests.harness import free_port, logged_port, wait_until_up
from tests.harness import stop as harness_stop

WEBHOOK_SECRET = "shpss_test_webhook_secret"
SECRET_KEY = "cli-test-key"  # the key tests.cli.helpers.cli_env gives every process


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Stop a server or worker the way Ctrl-C does."""
    harness_stop(process, signal.SIGINT, timeout)


@dataclass
class Simulator:
    """A running ``python -m storesync.simulator``."""

    url: str
    process: subprocess.Popen[bytes]
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def start(cls, log: Path, attempts: int = 3) -> Simulator:
        for attempt in range(attempts):
            port = free_port()
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "storesync.simulator", "--port", str(port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_up(f"{url}/_sim/health", process, 60)
            except RuntimeError:  # most likely the port was taken meanwhile: try another
                if attempt == attempts - 1:
                    raise RuntimeError(log.read_text()) from None
                continue
            listed = httpx.get(f"{url}/_sim/stores").json()["stores"]
            return cls(url, process, {s["shop_domain"]: s for s in listed})
        raise AssertionError("unreachable")

    def reset(self) -> None:
        """Forget rate-limit windows and budgets spent by earlier tests."""
        httpx.post(f"{self.url}/_sim/reset").raise_for_status()

    def truth(self, shop: str, period: Period) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/_sim/truth/{shop}",
            params={"start": period.start.isoformat(), "end": period.end.isoformat()},
        )
        response.raise_for_status()
        return dict(response.json())


@dataclass
class Deployment:
    """One test's database, settings and processes (servers and workers)."""

    db_url: str
    data_dir: Path
    simulator: Simulator
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: More settings of the processes this deployment starts (``STORESYNC_…`` variables).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings(
            database_url=self.db_url,
            data_dir=self.data_dir,
            secret_key=SECRET_KEY,  # type: ignore[arg-type]
        )

    def settings_dialect(self) -> str:
        return "postgresql" if self.db_url.startswith("postgresql") else "sqlite"

    def env(self) -> dict[str, str]:
        return cli_env(
            self.db_url,
            str(self.data_dir),
            STORESYNC_SHOPIFY_BASE_URL=f"{self.simulator.url}/shops/{{shop}}",
            STORESYNC_KLAVIYO_BASE_URL=self.simulator.url,
            STORESYNC_SHOPIFY_API_SECRET=WEBHOOK_SECRET,
            STORESYNC_SHUTDOWN_GRACE_SECONDS="1",
            STORESYNC_POLL_INTERVAL_SECONDS="0.2",
            **self.extra_env,
        )

    def _spawn(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
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

    def serve(self, *, worker: bool = True) -> str:
        """Start ``storesync serve`` and return its base URL once it answers."""
        # Port 0: the server binds a free port itself and logs it (no race with other tests
        # for a port chosen here); no scheduler: the tests decide what is queued.
        args = ["serve", "--port", "0", "--no-access-log", "--no-scheduler"]
        process, log = self._spawn("serve", *args, *([] if worker else ["--no-worker"]))
        try:
            port = logged_port(log, process)
            url = f"http://127.0.0.1:{port}"
            wait_until_up(f"{url}/healthz", process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n--- logs ---\n{self.logs()}") from None
        return url

    def worker(self) -> subprocess.Popen[bytes]:
        return self._spawn("worker", "worker", "--no-scheduler")[0]

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            stop(process)

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.data_dir.glob("*.log")))

    # -- data, written in-process through storesync's own modules -----------------------------

    def token(self, account: str, *, scope: Scope = "normal") -> str:
        return self._run(self._token(account, scope))

    async def _token(self, account: str, scope: Scope) -> str:
        database = connect(self.settings)
        try:
            return await create_token(database, account, scope=scope)
        finally:
            await database.dispose()

    def add_store(self, shop: str, *, account: str = "default", klaviyo: bool = True) -> int:
        """Add the simulated store ``shop`` (with its credentials) to ``account``."""
        spec = self.simulator.stores[shop]
        return self._run(self._add_store(spec, account, klaviyo))

    async def _add_store(self, spec: dict[str, Any], account: str, klaviyo: bool) -> int:
        database = connect(self.settings)
        try:
            directory = StoreDirectory(database, SecretBox.from_settings(self.settings))
            store = await directory.add(
                name=spec["name"],
                shopify_domain=spec["shop_domain"],
                shopify_token=spec["shopify_token"],
                klaviyo_key=spec["klaviyo_private_key"] if klaviyo else None,
                timezone=spec["timezone"],
                account=account,
            )
            return store.id
        finally:
            await database.dispose()

    def cache(
        self, store_id: int, period: Period, *, age: timedelta, expires_in: timedelta | None
    ) -> None:
        """Write cached figures for ``period`` as if synced ``age`` ago."""
        self._run(self._cache(store_id, period, age, expires_in))

    async def _cache(
        self, store_id: int, period: Period, age: timedelta, expires_in: timedelta | None
    ) -> None:
        database = connect(self.settings)
        synced = datetime.now(UTC) - age
        shopify = ShopifyFigures(
            currency="EUR",
            orders=3,
            total_sales=Decimal("30.00"),
            gross_sales=Decimal("33.00"),
            discounts=Decimal("3.00"),
            refunds=Decimal("0.00"),
            new_customers=2,
            returning_customers=1,
            daily=tuple(DailySales(d, 0, Decimal("0.00")) for d in period.dates()),
        )
        try:
            async with database.transaction() as conn:
                await write_rows(
                    conn,
                    database.dialect,
                    store_id=store_id,
                    period=period,
                    payloads={SHOPIFY: shopify.to_json(), KLAVIYO: KlaviyoFigures().to_json()},
                    synced_at=synced,
                    expires=synced + expires_in if expires_in is not None else None,
                    job_id=None,
                )
        finally:
            await database.dispose()

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a read-only query, straight from the database."""
        return self._run(self._query(sql))

    async def _query(self, sql: str) -> list[dict[str, Any]]:
        from sqlalchemy import text

        database = connect(self.settings)
        try:
            async with database.read() as conn:
                return [dict(r) for r in (await conn.execute(text(sql))).mappings()]
        finally:
            await database.dispose()

    @staticmethod
    def _run(coro: Any) -> Any:
        return asyncio.run(coro) if not _in_loop() else _run_in_thread(coro)


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_in_thread(coro: Any) -> Any:
    # Async tests call these helpers from inside their own loop: run them on a fresh one.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def recent_period(days: int = 2) -> Period:
    """A short period ending yesterday (UTC): quick to sync, not final."""
    end = datetime.now(UTC).date() - timedelta(days=1)
    return Period(end - timedelta(days=days - 1), end)


def old_period() -> Period:
    """A short period long settled (final: its cache never expires by time)."""
    end = date.today() - timedelta(days=60)
    return Period(end - timedelta(days=1), end)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

"""``storesync demo``: the whole system on simulated stores, in one command.

It wipes and recreates a data directory (``.storesync/demo``) with a fresh SQLite database,
starts the Shopify and Klaviyo simulator in a background thread, adds its three stores to
account ``demo`` (a big New York store in USD, a Lisbon store in EUR, and a São Paulo store
in BRL whose Shopify token is revoked, to show the error state), creates an API token and a
one-time sign-in link, queues the first syncs (each store's standard periods, today, last 7
days and last 30 days, and the period before each, shortest first, so the dashboard comes alive
within seconds), and runs ``serve`` with its embedded worker and scheduler, which keeps them
fresh from then on. A month's sync runs in week-long chunks, so its progress moves in steps.

The simulated Klaviyo allows more report calls a minute than the real one (the daily budget
is Klaviyo's 225), so that the first syncs do not queue behind its two-a-minute limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from storesync.cli.common import errors
from storesync.logs import configure
from storesync.settings import Settings

if TYPE_CHECKING:  # imported where used: the other commands start faster without them
    from storesync.server import ApiServer
    from storesync.simulator import Simulator, SimulatorConfig
    from storesync.storage import Database
    from storesync.stores import StoreInfo

MARKER = ".storesync-demo"
#: The simulated Klaviyo's report calls per second and per minute (Klaviyo's: 1 and 2).
REPORTS_PER_SECOND = 10
REPORTS_PER_MINUTE = 120
#: Week-long chunks: a month's sync shows its progress in several steps.
CHUNK_DAYS = 7


def demo(
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port of the dashboard.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo's database lives; wiped on every start.")
    ] = Path(".storesync/demo"),
) -> None:
    """Run simulated stores, a worker and the dashboard; print a one-time sign-in link."""
    from storesync.app import create_app
    from storesync.server import build_server
    from storesync.simulator import Simulator, serve_in_thread

    configure()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _fresh_directory(data_dir)
    simulator = Simulator(_simulator_config())
    with serve_in_thread(simulator) as simulator_url:
        settings = Settings(
            data_dir=data_dir,
            database_url=f"sqlite:///{(data_dir / 'storesync.db').resolve()}",
            shopify_base_url=f"{simulator_url}/shops/{{shop}}",
            klaviyo_base_url=simulator_url,
            klaviyo_reports_per_second=REPORTS_PER_SECOND,
            klaviyo_reports_per_minute=REPORTS_PER_MINUTE,
            sync_chunk_days=CHUNK_DAYS,
        )
        token, secret = asyncio.run(_prepare(settings, simulator))
        listening = _bind(host, port)
        bound = listening.getsockname()[1]
        server = build_server(create_app(settings), host=host, port=bound, access_log=False)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        base = f"http://{shown}:{bound}"
        banner = (
            "\nstoresync demo: three simulated stores, a worker and the dashboard\n"
            f"  data directory: {data_dir} (wiped on every start)\n"
            f"  simulator:      {simulator_url}\n"
            f"  API token:      {token}\n"
            "  open this one-time sign-in link (valid 15 minutes, works once):\n"
            f"  {base}/sign-in/once/{secret}\n"
            "Stop with Ctrl+C.\n"
        )
        threading.Thread(
            target=_announce, args=(server, banner), name="demo-banner", daemon=True
        ).start()
        server.run(sockets=[listening])


def _simulator_config() -> SimulatorConfig:
    from storesync.simulator import WindowLimit, demo_config

    config = demo_config()
    reports = config.klaviyo_limits.reports
    limits = dataclasses.replace(
        config.klaviyo_limits,
        reports=WindowLimit(REPORTS_PER_SECOND, REPORTS_PER_MINUTE, reports.daily),
    )
    return dataclasses.replace(config, klaviyo_limits=limits)


def _fresh_directory(path: Path) -> None:
    """Empty ``path`` for a new demo, refusing a directory the demo did not create."""
    if path.exists():
        if any(path.iterdir()) and not (path / MARKER).exists():
            errors.print(
                f"[red]error:[/red] {path} is not empty and was not made by `storesync demo`; "
                "choose another --data-dir",
                highlight=False,
            )
            raise typer.Exit(2)
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by `storesync demo`; wiped on every start\n")


async def _prepare(settings: Settings, simulator: Simulator) -> tuple[str, str]:
    """Migrate, add the simulated stores to account ``demo``, make a token and a link."""
    from storesync.accounts import create_token
    from storesync.storage import connect, migrate
    from storesync.storage.crypto import SecretBox
    from storesync.stores import StoreDirectory
    from storesync.web.signin import create_sign_in_link

    database = connect(settings)
    try:
        await migrate(database)
        directory = StoreDirectory(
            database, SecretBox.from_settings(settings), extra_hosts=settings.shop_extra_hosts
        )
        for spec in simulator.stores:
            await directory.add(
                name=spec.name or spec.shop_domain,
                shopify_domain=spec.shop_domain,
                shopify_token=spec.shopify_token,
                klaviyo_key=spec.klaviyo_private_key,
                timezone=spec.timezone,
                account="demo",
                currency=spec.currency,
            )
        await _queue_first_syncs(database, settings, await directory.list())
        token = await create_token(database, "demo", label="storesync demo")
        return token, await create_sign_in_link(database, token)
    finally:
        await database.dispose()


async def _queue_first_syncs(
    database: Database, settings: Settings, stores: list[StoreInfo]
) -> None:
    """Queue each store's standard periods and the period just before each one (so that the
    KPI cards can show a change), quickest first: the dashboard fills in within seconds and
    the month-long syncs follow. The scheduler finds them queued and keeps them fresh."""
    from storesync.periods import named_period, today_in, zone
    from storesync.queue import JobQueue, Reason

    queue = JobQueue(database, settings)
    now = datetime.now(UTC)
    names = sorted(
        {name for store in stores for name in store.refresh_periods},
        key=lambda name: named_period(name, now.date()).days,
    )
    for name in names:
        for store in stores:
            if name not in store.refresh_periods:
                continue
            current = named_period(name, today_in(zone(store.timezone), now))
            for period in (current, current.previous()):
                await queue.enqueue(store.id, period.start, period.end, reason=Reason.SCHEDULE)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the server starts so the URL can name its port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as exc:
        listening.close()
        errors.print(f"[red]error:[/red] cannot listen on {host}:{port}: {exc.strerror}")
        raise typer.Exit(1) from None
    listening.listen(128)
    return listening


def _announce(server: ApiServer, banner: str) -> None:
    """Print the banner once the server accepts connections."""
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    typer.echo(banner)

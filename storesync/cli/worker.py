"""``storesync worker`` and ``storesync simulator``: the long-running processes."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from storesync.cli.common import load_settings, open_database, run
from storesync.logs import configure


def worker(
    once: Annotated[bool, typer.Option(help="Drain the due jobs, then exit (for cron).")] = False,
    concurrency: Annotated[
        int,
        typer.Option(min=1, help="Jobs this process runs at once (the global limit still holds)."),
    ] = 3,
    scheduler: Annotated[
        bool, typer.Option(help="Take part in scheduling refreshes of stale periods.")
    ] = True,
    log_json: Annotated[bool, typer.Option(help="Log one JSON object per line.")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics on this port, on STORESYNC_METRICS_HOST (default "
            "127.0.0.1: only this machine)."
        ),
    ] = None,
) -> None:
    """Run syncs from the queue until stopped (SIGTERM/SIGINT stop it gracefully)."""
    configure(json_lines=log_json)
    settings = load_settings()

    # Imported here: the connectors are heavy, and most commands never need them.
    from storesync.metrics import Metrics
    from storesync.sync.services import sync_services
    from storesync.worker import Worker

    async def main() -> None:
        metrics = Metrics()
        if metrics_port is not None:
            from prometheus_client import start_http_server

            # prometheus_client binds every interface unless told: the metrics tell about
            # every account's jobs, so only the configured interface.
            start_http_server(metrics_port, addr=settings.metrics_host, registry=metrics.registry)
        async with (
            # No ping per checkout: the worker waits out an unavailable database itself.
            open_database(settings, ping=False) as database,
            sync_services(database, settings, metrics) as services,
        ):
            process = Worker(
                services,
                concurrency=concurrency,
                schedule=scheduler and not once,
                metrics=metrics,
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, process.stop)
            await process.run(once=once)

    run(main)


def simulator(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8787,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    stores: Annotated[
        int | None, typer.Option(help="Serve N generated stores instead of the demo set.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated stores.")] = 0,
    config: Annotated[
        Path | None, typer.Option(help="A JSON file with the simulator's configuration.")
    ] = None,
) -> None:
    """Serve the Shopify and Klaviyo simulator (for tests, demos and benchmarks)."""
    from storesync.simulator.__main__ import main as simulator_main

    argv = ["--host", host, "--port", str(port), "--seed", str(seed)]
    if stores is not None:
        argv += ["--stores", str(stores)]
    if config is not None:
        argv += ["--config", str(config)]
    raise typer.Exit(simulator_main(argv))

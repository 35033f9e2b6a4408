"""``storesync serve``: the HTTP API, with an embedded worker and scheduler by default."""

from __future__ import annotations

from typing import Annotated

import typer

from storesync.cli.common import errors, load_settings
from storesync.errors import InputError
from storesync.logs import configure
from storesync.storage.engine import async_url


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port to listen on.")] = 8000,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Run syncs and the scheduler in this process (the single-machine default); "
            "--no-worker when separate `storesync worker` processes do the work.",
        ),
    ] = True,
    scheduler: Annotated[
        bool, typer.Option(help="Let the embedded worker take part in scheduling refreshes.")
    ] = True,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    log_json: Annotated[bool, typer.Option(help="Log one JSON object per line.")] = False,
) -> None:
    """Serve the API (migrating the database first) until SIGINT or SIGTERM."""
    from storesync.server import serve as run_server  # FastAPI loads only for this command

    configure(json_lines=log_json)
    settings = load_settings()
    try:
        async_url(settings.resolved_database_url)
    except InputError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    run_server(
        settings,
        host=host,
        port=port,
        embedded_worker=worker,
        scheduler=scheduler,
        access_log=access_log,
    )

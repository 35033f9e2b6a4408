"""The ``storesync`` command line (Typer + Rich). ``asyncio.run`` happens only here."""

from __future__ import annotations

import typer

from storesync.cli import admin, backup, demo, serve, sync, worker
from storesync.cli.stores import stores_app
from storesync.cli.tokens import tokens_app

app = typer.Typer(
    name="storesync",
    help="Keep Shopify and Klaviyo dashboard data fresh: a cache and a durable sync queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.command()(admin.init)
app.command()(admin.jobs)
app.command()(admin.stats)
app.command()(admin.cleanup)
app.command()(admin.prune)
app.command()(admin.logs)
app.command()(backup.backup)
app.add_typer(stores_app, name="stores")
app.add_typer(sync.cache_app, name="cache")
app.command()(sync.sync)
app.command()(worker.worker)
app.command()(worker.simulator)
app.command()(serve.serve)
app.command()(demo.demo)
app.add_typer(tokens_app, name="tokens")


def main() -> None:
    app()

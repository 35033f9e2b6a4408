"""``storesync stores …`` (the tokens commands are in :mod:`storesync.cli.tokens`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from storesync.accounts import DEFAULT_ACCOUNT
from storesync.cli.common import console, load_settings, open_database, print_json, run
from storesync.storage.crypto import SecretBox
from storesync.stores import StoreDirectory, StoreInfo

stores_app = typer.Typer(help="Add and list stores.", no_args_is_help=True)


@stores_app.command("add")
def add(
    name: Annotated[str, typer.Option(help="A name people recognise.")],
    shopify_domain: Annotated[str, typer.Option(help="The shop's domain, e.g. acme.myshopify.com")],
    shopify_token: Annotated[
        str,
        typer.Option(
            help="The Admin API access token (or set STORESYNC_ADD_SHOPIFY_TOKEN).",
            envvar="STORESYNC_ADD_SHOPIFY_TOKEN",
        ),
    ],
    timezone: Annotated[str, typer.Option(help="The store's IANA time zone, e.g. Europe/Lisbon.")],
    klaviyo_key: Annotated[
        str | None,
        typer.Option(
            help="The Klaviyo private API key (or set STORESYNC_ADD_KLAVIYO_KEY).",
            envvar="STORESYNC_ADD_KLAVIYO_KEY",
        ),
    ] = None,
    account: Annotated[str, typer.Option(help="The owning account (created when new).")] = (
        DEFAULT_ACCOUNT
    ),
    currency: Annotated[str | None, typer.Option(help="Shop currency; learned on sync.")] = None,
    periods: Annotated[
        str | None,
        typer.Option(help="Periods the scheduler keeps fresh, comma-separated."),
    ] = None,
) -> None:
    """Add a store. Prints the new store's id on the last line."""
    settings = load_settings()

    async def main() -> StoreInfo:
        async with open_database(settings) as database:
            directory = StoreDirectory(
                database,
                SecretBox.from_settings(settings),
                extra_hosts=settings.shop_extra_hosts,
                max_stores_per_account=settings.max_stores_per_account,
            )
            return await directory.add(
                name=name,
                shopify_domain=shopify_domain,
                shopify_token=shopify_token,
                klaviyo_key=klaviyo_key,
                timezone=timezone,
                account=account,
                currency=currency,
                refresh_periods=[p.strip() for p in periods.split(",")] if periods else None,
            )

    store = run(main)
    console.print(
        f"added store {store.name!r} ({store.shopify_domain}) to account {store.account!r}",
        highlight=False,
    )
    typer.echo(store.id)


@stores_app.command("list")
def list_stores(
    account: Annotated[str | None, typer.Option(help="Only this account's stores.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List stores (credentials are never shown)."""
    settings = load_settings()

    async def main() -> list[StoreInfo]:
        async with open_database(settings) as database:
            found = await StoreDirectory(database, SecretBox.from_settings(settings)).list()
            return [s for s in found if account is None or s.account == account]

    found = run(main)
    if as_json:
        print_json([s.to_json() for s in found])
        return
    table = Table(title=f"{len(found)} store(s)")
    for column in ("id", "name", "shop", "account", "time zone", "currency", "klaviyo", "periods"):
        table.add_column(column)
    for s in found:
        table.add_row(
            str(s.id),
            s.name,
            s.shopify_domain,
            s.account,
            s.timezone,
            s.currency or "?",
            "yes" if s.has_klaviyo else "no",
            ", ".join(s.refresh_periods),
        )
    console.print(table)

"""``storesync tokens create | list | revoke``: the API tokens of the accounts.

A token is printed once, when created; listings show its id, label, scope, dates and state,
never the token. ``revoke`` takes effect at once: the next request with it is a 401, and the
browser sessions opened with it are signed out.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from storesync.accounts import MAX_EXPIRY_DAYS, Scope, TokenInfo, list_tokens, revoke_token
from storesync.accounts import create_token as create_api_token
from storesync.cli.common import console, load_settings, open_database, print_json, run, when

tokens_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@tokens_app.command("create")
def create(
    account: Annotated[str, typer.Option(help="The account the token acts for.")],
    label: Annotated[str | None, typer.Option(help="A note on what the token is for.")] = None,
    expires_in_days: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_EXPIRY_DAYS, help="Stop working after this many days."),
    ] = None,
    scope: Annotated[
        str,
        typer.Option(
            help="normal: acts for the account; admin: also sees the workers' hosts and pids "
            "and /metrics."
        ),
    ] = "normal",
) -> None:
    """Create an API token. It is printed once, on the last line; only its hash is stored."""
    settings = load_settings()

    async def main() -> str:
        async with open_database(settings) as database:
            return await create_api_token(
                database,
                account,
                label,
                scope=_scope(scope),
                expires_in_days=expires_in_days,
            )

    token = run(main)
    console.print(f"API token for account {account!r} (shown once; keep it safe):", highlight=False)
    typer.echo(token)


@tokens_app.command("list")
def list_command(
    account: Annotated[
        str | None, typer.Option(help="Only this account's tokens (default: every account).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List API tokens: id, label, scope, created, last used, expiry, state (never the token)."""
    settings = load_settings()

    async def main() -> list[TokenInfo]:
        async with open_database(settings) as database:
            return await list_tokens(database, account=account)

    found = run(main)
    if as_json:
        print_json([t.to_json() for t in found])
        return
    table = Table(title=f"{len(found)} token(s)")
    for column in ("id", "account", "label", "scope", "created", "last used", "expires", "state"):
        table.add_column(column)
    for t in found:
        state = "revoked" if t.revoked_at else ("active" if t.active() else "expired")
        table.add_row(
            str(t.id),
            t.account,
            t.label or "",
            t.scope,
            when(t.created_at),
            when(t.last_used_at),
            when(t.expires_at) if t.expires_at else "never",
            state,
        )
    console.print(table)


@tokens_app.command("revoke")
def revoke(token_id: Annotated[int, typer.Argument(min=1, help="The token's id.")]) -> None:
    """Revoke an API token: refused from the next request on, its web sessions signed out."""
    settings = load_settings()

    async def main() -> TokenInfo:
        async with open_database(settings) as database:
            return await revoke_token(database, token_id)

    info = run(main)
    console.print(
        f"token {info.id} of account {info.account!r} is revoked (since {when(info.revoked_at)})",
        highlight=False,
    )


def _scope(value: str) -> Scope:
    if value == "admin":
        return "admin"
    if value == "normal":
        return "normal"
    raise typer.BadParameter("use normal or admin", param_hint="--scope")

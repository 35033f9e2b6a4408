"""What every command shares: settings, the database, async at the edge, output, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from storesync.errors import InputError, InvalidStateError, NotFoundError, StoresyncError
from storesync.settings import Settings
from storesync.storage import Database, connect, migrate
from storesync.storage.types import MAX_ID

T = TypeVar("T")

#: Ids on the command line: 1 up to what the database can hold; a larger number is a usage
#: error, not a query the driver refuses with a traceback.
StoreIdArgument = Annotated[int, typer.Argument(min=1, max=MAX_ID, help="The store id.")]
JobIdArgument = Annotated[int, typer.Argument(min=1, max=MAX_ID, help="The job id.")]
StoreIdFilter = Annotated[
    int | None, typer.Option("--store", min=1, max=MAX_ID, help="Only this store id.")
]

console = Console()
# Messages are not wrapped at the terminal's width: a path or an id cut in two can't be copied.
errors = Console(stderr=True, soft_wrap=True)


def load_settings() -> Settings:
    """Settings from the environment and ``.env``, or a clear exit on bad values."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = "STORESYNC_" + str(error["loc"][0]).upper() if error["loc"] else "settings"
            errors.print(f"[red]error:[/red] {field}: {error['msg']}")
        raise typer.Exit(2) from None


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine at the command-line edge, turning storesync errors into exit codes."""
    try:
        return asyncio.run(main())  # type: ignore[arg-type]
    except (InputError, NotFoundError) as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except (InvalidStateError, StoresyncError) as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


@asynccontextmanager
async def open_database(
    settings: Settings, *, migrated: bool = True, ping: bool = True
) -> AsyncIterator[Database]:
    """The configured database, migrated to the newest schema unless told otherwise (``ping``:
    see :func:`storesync.storage.connect`)."""
    database = connect(settings, ping=ping)
    try:
        if migrated:
            await migrate(database)
        yield database
    finally:
        await database.dispose()


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def when(value: datetime | None) -> str:
    """A short local rendering of an instant for tables."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")

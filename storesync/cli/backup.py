"""``storesync backup PATH``: a copy of the database, taken while everything keeps running."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from storesync.cli.admin import JsonFlag
from storesync.cli.common import console, load_settings, print_json, run
from storesync.storage.backup import BackupResult
from storesync.storage.backup import backup as take_backup


def backup(
    path: Annotated[
        Path, typer.Argument(help="The backup file to write (a new file).", show_default=False)
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Back up the database online: SQLite's backup API, or pg_dump for PostgreSQL.

    Restore a SQLite backup by copying it over the database file with every process stopped;
    a PostgreSQL backup with pg_restore (see docs/deploy.md). Keep STORESYNC_SECRET_KEY (or the
    key file): the stores' credentials in the backup are encrypted with it.
    """
    settings = load_settings()

    async def main() -> BackupResult:
        return await take_backup(settings, path, overwrite=force)

    result = run(main)
    if as_json:
        print_json(result.to_json())
        return
    console.print(
        f"backed up {result.database} (schema revision {result.revision or 'none'}) "
        f"to {result.path}: {result.size:,} bytes",
        highlight=False,
        soft_wrap=True,
    )

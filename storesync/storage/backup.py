"""Online backups of the database (``storesync backup PATH``), while servers and workers run.

- **SQLite**: SQLite's online backup API (:meth:`sqlite3.Connection.backup`) copies a consistent
  snapshot in one step; in WAL mode the other processes keep reading and writing meanwhile.
  The copy is switched to a rollback journal (a single self-contained file) and must pass
  ``PRAGMA integrity_check``.
- **PostgreSQL**: ``pg_dump --format=custom``, to restore with ``pg_restore``. The password
  reaches pg_dump through its environment (``PGPASSWORD``), never its command line, where
  every user of the machine could read it.

Either way the backup is written under a temporary name beside ``PATH`` with mode 0600, and
renamed into place only when complete: a failed backup never leaves a half-written file
under the name asked for. A backup holds the stores' credentials encrypted: keep
``STORESYNC_SECRET_KEY`` (or the key file), which decrypts them, safe and apart from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from storesync.errors import InputError, StoresyncError
from storesync.settings import Settings
from storesync.storage.engine import async_url, connect, mask_url
from storesync.storage.migrate import current_revision


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What ``storesync backup`` wrote."""

    path: Path
    size: int
    database: str  # the source URL, password masked
    dialect: str
    revision: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "bytes": self.size,
            "database": self.database,
            "dialect": self.dialect,
            "revision": self.revision,
        }


async def backup(settings: Settings, target: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy the configured database to ``target`` without stopping anything.

    Raises :class:`InputError` for a target that exists (unless ``overwrite``), a missing
    directory or a missing SQLite database, and :class:`StoresyncError` when the copy fails.
    """
    raw = settings.resolved_database_url
    url = async_url(raw)  # InputError for an unsupported or malformed URL
    target = target.expanduser().absolute()
    if not target.parent.is_dir():
        raise InputError(f"cannot write {target}: the directory {target.parent} does not exist")
    if target.is_dir():
        raise InputError(f"{target} is a directory: give the backup file's name")
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists: choose a new name, or pass --force")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:  # created here, so that the copy is private from its first byte
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror}") from None
    try:
        if url.get_backend_name() == "sqlite":
            revision = await asyncio.to_thread(_sqlite_copy, _sqlite_file(url, target), partial)
            dialect = "sqlite"
        else:
            await _pg_dump(url, partial)
            revision = await _pg_revision(settings)
            dialect = "postgresql"
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(target, target.stat().st_size, mask_url(raw), dialect, revision)


def _sqlite_file(url: URL, target: Path) -> Path:
    if not url.database or url.database == ":memory:":
        raise InputError("an in-memory SQLite database cannot be backed up")
    source = Path(url.database).absolute()
    if not source.is_file():
        raise InputError(
            f"there is no database at {source} to back up "
            "(see STORESYNC_DATABASE_URL and STORESYNC_DATA_DIR)"
        )
    if source.resolve() == target.resolve():
        raise InputError("the backup cannot overwrite the database itself")
    return source


def _sqlite_copy(source: Path, partial: Path) -> str | None:
    """Copy ``source`` into the empty file ``partial``; return its schema revision."""
    # mode=rw: connecting never creates an empty database where the real one was expected.
    src = sqlite3.connect(f"{source.as_uri()}?mode=rw", uri=True, timeout=30)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)  # all pages in one step: a consistent snapshot
        dst.execute("PRAGMA journal_mode=DELETE")  # one file, readable without -wal/-shm
        check = dst.execute("PRAGMA integrity_check").fetchone()
        if not check or check[0] != "ok":
            raise StoresyncError(f"the backup copy failed its integrity check: {check}")
        try:
            row = dst.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            row = None  # a database storesync never initialised
    except sqlite3.Error as exc:
        raise StoresyncError(f"the SQLite backup failed: {exc}") from None
    finally:
        dst.close()
        src.close()
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    return str(row[0]) if row else None


def _libpq_target(url: URL) -> tuple[str, dict[str, str]]:
    """The URL libpq programs (pg_dump) accept, without its password, and the environment
    that carries the password."""
    env = {}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


async def _pg_dump(url: URL, partial: Path) -> None:
    program = shutil.which("pg_dump")
    if program is None:
        raise StoresyncError(
            "pg_dump is not installed: install PostgreSQL's client programs "
            "(same major version as the server, or newer), e.g. postgresql-client"
        )
    dsn, secret = _libpq_target(url)
    process = await asyncio.create_subprocess_exec(
        program,
        "--format=custom",
        "--no-password",  # never prompt: a backup runs unattended
        f"--file={partial}",
        f"--dbname={dsn}",
        env={**os.environ, **secret},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip() or f"exit status {process.returncode}"
        raise StoresyncError(f"pg_dump failed: {message}")


async def _pg_revision(settings: Settings) -> str | None:
    database = connect(settings, poolclass=NullPool)
    try:
        with contextlib.suppress(Exception):  # the dump is what matters; the label is a bonus
            return await current_revision(database)
        return None
    finally:
        await database.dispose()

"""Engines for the two supported databases, and the one way to open a transaction.

SQLite (the embedded default) runs in WAL mode with a busy timeout, and every transaction that
writes queue state starts with ``BEGIN IMMEDIATE``, which takes SQLite's single write lock up
front: two processes can then never both read "2 jobs processing" and both claim a third.
PostgreSQL is reached through asyncpg; its claims rely on row locks and an advisory lock
(see ``storesync.queue``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storesync.errors import InputError
from storesync.settings import Settings
from storesync.storage.events import EventBus, take_pending

_IMMEDIATE = "storesync_immediate"


def async_url(raw: str) -> URL:
    """Map a user-facing URL (``sqlite:///…``, ``postgresql://…``) to its async driver."""
    try:
        url = make_url(raw)
    except Exception:
        raise InputError(f"STORESYNC_DATABASE_URL is not a database URL: {mask_url(raw)}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    raise InputError(
        f"unsupported database {backend!r}: use sqlite:///path or postgresql://user@host/db"
    )


def mask_url(raw: str) -> str:
    """The URL with any password replaced, safe for logs and error messages."""
    try:
        return make_url(raw).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


class Database:
    """An async engine plus what storesync needs to know about its dialect."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        #: This process's subscribers to change events (see ``storesync.storage.events``).
        self.events = EventBus()

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def transaction(self, *, immediate: bool = True) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed on success, rolled back on error.

        On SQLite a writing transaction must start with ``BEGIN IMMEDIATE``: a deferred one
        that reads first cannot upgrade to the write lock while another connection writes, and
        fails at once with "database is locked" instead of waiting. ``immediate=False`` is
        only for transactions that never write. On PostgreSQL it changes nothing.
        """
        async with self.engine.connect() as conn:
            if immediate and self.is_sqlite:
                conn = await conn.execution_options(**{_IMMEDIATE: True})
            try:
                async with conn.begin():
                    yield conn
            except BaseException:
                # Rolled back: nobody hears of it. A statement cut short (a cancelled task)
                # invalidates the connection, and its events went with it; touching it then
                # would raise an error of its own in place of this one.
                if not conn.invalidated:
                    take_pending(conn)
                raise
            for event in take_pending(conn):
                self.events.deliver(event)

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[AsyncConnection]:
        """A connection for work where every statement is atomic by itself.

        On PostgreSQL each statement commits on its own (autocommit): no ``BEGIN`` and
        ``COMMIT`` round trips, which are most of the cost of a one-statement queue operation.
        Use it only when nothing needs two statements to succeed or fail together. SQLite's
        statements run in one ``BEGIN IMMEDIATE`` transaction instead, as every writer's do.
        """
        if self.is_sqlite:
            async with self.transaction() as conn:
                yield conn
            return
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (a plain transaction; never holds SQLite's write lock)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN IMMEDIATE is possible.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def connect(settings: Settings, *, ping: bool = True, **engine_options: Any) -> Database:
    """Create the :class:`Database` the settings point at (the data directory is created).

    ``ping=False`` is for processes that wait out an unavailable database themselves (the
    workers): see the comment below.
    """
    url = async_url(settings.resolved_database_url)
    options: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            create_private_file(Path(url.database))
        options["connect_args"] = {"timeout": 30}
    else:
        # Ping a pooled connection at checkout: after a restart or failover the pool holds
        # dead connections, and without the ping the first statement on one fails (an HTTP
        # caller would get a 503). The ping costs three round trips (BEGIN, a query,
        # ROLLBACK): a one-statement queue operation makes four. A worker goes without: a
        # statement failing as unavailable (see is_unavailable) makes it wait and try again,
        # and SQLAlchemy then replaces every connection of the pool. SQLite files cannot go
        # away under a connection: no ping there.
        options["pool_pre_ping"] = ping
        if "poolclass" not in engine_options:
            options.update(pool_size=10, max_overflow=10)
    options.update(engine_options)
    engine = create_async_engine(url, **options)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return Database(engine)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (then it is left as it is).

    SQLite creates a database file 0644 (less the umask), and gives its ``-wal`` and ``-shm``
    files the database file's mode: created here first, all three are the owner's only. They
    hold every store's figures and encrypted credentials. A missing parent directory is left
    for SQLite to report.
    """
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


#: SQLSTATE classes and codes that mean "the server is not there right now".
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300", "3D000")


#: PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
#: because of another one, and running it again is the documented answer.
_CONFLICT_STATES = ("40P01", "40001")


def is_transient_conflict(exc: BaseException) -> bool:
    """True when ``exc`` is a transaction rolled back for a clash with a concurrent one (a
    deadlock, a serialization failure): nothing was written, and it may simply be run again."""
    if not isinstance(exc, DBAPIError):
        return False
    return any(
        str(getattr(cause, "sqlstate", "") or "") in _CONFLICT_STATES
        for cause in (exc.orig, getattr(exc.orig, "__cause__", None))
    )


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached now (worth waiting for),
    as opposed to a mistake in a statement (worth a loud failure).

    The whole chain of causes counts: a lost connection can surface as a secondary error
    raised while the driver cleans up after it.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _unavailable(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        for cause in (exc.orig, getattr(exc.orig, "__cause__", None)):
            state = str(getattr(cause, "sqlstate", "") or "")
            if state and state.startswith(_UNAVAILABLE_STATES):
                return True
            if cause is not None and type(cause).__name__ in (
                "ConnectionDoesNotExistError",
                "CannotConnectNowError",
                "InterfaceError",
            ):
                return True
    return False

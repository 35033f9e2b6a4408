"""A change to jobs, its lines in their event logs and its announcement, written together.

Every state change of a job is an ``UPDATE`` (or, for enqueue, an ``INSERT``) of ``sync_queue``
rows that also appends one line per changed job to ``sync_job_events`` and announces the change
to listeners (workers waiting for work, the live pages). A queue operation's cost is mostly its
round trips to the server, so on PostgreSQL the three travel as ONE statement::

    WITH changed AS (UPDATE sync_queue ... RETURNING *),
         logged AS (INSERT INTO sync_job_events ... SELECT ... FROM changed)
    SELECT changed.*, pg_notify('storesync_events', json_build_object(...)) FROM changed

The announcement's JSON is then built by the server from the changed row; :func:`announcement`
builds the same document in Python for SQLite (which keeps it for delivery after the commit; see
``storage.events``) and for announcements that change no job. A test compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, cast, func, insert, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Insert, Update

from storesync.queue.jobs import Job
from storesync.storage.events import EVENTS_CHANNEL, Event, publish
from storesync.storage.models import JobEvent, SyncJob, table_of
from storesync.storage.types import UTCDateTime

JOBS = table_of(SyncJob)
EVENTS = table_of(JobEvent)
_NOTIFIED = "notified"  # the pg_notify() column of the combined statement: not part of a job


@dataclass(frozen=True)
class LogLine:
    """The line each changed job gets in its event log."""

    kind: str
    message: str


def announcement(kind: str, job: Job) -> Event:
    """The change event listeners receive for ``job`` (see :func:`_announcement_sql`)."""
    return {
        "type": kind,
        "job_id": job.id,
        "store_id": job.store_id,
        "status": job.status.value,
        "period_start": job.period_start.isoformat(),
        "period_end": job.period_end.isoformat(),
        "percent": (job.progress or {}).get("percent"),
        "retry_count": job.retry_count,
        "error_message": job.error_message,
    }


def _announcement_sql(kind: str, changed: Any) -> Any:
    """:func:`announcement`, built by PostgreSQL from a changed row, as JSON text."""
    fields: dict[str, Any] = {
        "type": cast(literal(kind), String),
        "job_id": changed.c.id,
        "store_id": changed.c.store_id,
        "status": changed.c.status,
        "period_start": changed.c.period_start,  # a date becomes "YYYY-MM-DD", as isoformat()
        "period_end": changed.c.period_end,
        "percent": changed.c.progress.op("->")(literal_column("'percent'")),
        "retry_count": changed.c.retry_count,
        "error_message": changed.c.error_message,
    }
    pairs: list[Any] = []
    for key, value in fields.items():
        pairs += [literal_column(f"'{key}'"), value]
    return cast(func.json_build_object(*pairs), String)


class Transition:
    """A change of ``sync_queue`` rows with its log line and announcement, built once.

    ``statement`` is an UPDATE or INSERT whose varying values are bind parameters, given to
    :meth:`run`. Building a statement costs more CPU than a round trip (SQLAlchemy coerces
    every column and computes a cache key), so the queue's frequent operations keep theirs;
    rare ones build a transition per call through :func:`change_jobs`.
    """

    def __init__(
        self,
        statement: Update | Insert,
        *,
        dialect: str,
        log: str | None,
        announce: str | None,
    ) -> None:
        self.log = log
        self.announce = announce
        self._on_postgres = dialect == "postgresql"
        if not self._on_postgres:
            self._statement: Any = statement.returning(*JOBS.c)
            return
        changed = statement.returning(*JOBS.c).cte("changed")
        combined = select(*changed.c)
        if announce is not None:
            notify = func.pg_notify(EVENTS_CHANNEL, _announcement_sql(announce, changed))
            combined = combined.add_columns(notify.label(_NOTIFIED))
        if log is not None:
            lines = insert(EVENTS).from_select(
                ["job_id", "at", "kind", "message"],
                select(
                    changed.c.id,
                    bindparam("logged_at", type_=UTCDateTime),
                    cast(literal(log), String),
                    bindparam("log_message", type_=String),
                ),
            )
            combined = combined.add_cte(lines.cte("logged"))
        self._statement = combined

    async def run(
        self,
        conn: AsyncConnection,
        params: dict[str, Any] | None = None,
        *,
        at: datetime,
        message: str = "",
    ) -> list[Job]:
        """Run the change with ``params``; returns the changed jobs.

        Everything happens in the caller's transaction (or, on a PostgreSQL connection in
        autocommit mode, in the one statement's own). ``message`` is the log line's text.
        """
        if not self._on_postgres:
            result = await conn.execute(self._statement, params or {})
            jobs = [Job.from_row(row) for row in result.mappings()]
            if self.log is not None:
                await write_log(conn, [job.id for job in jobs], at, self.log, message)
            if self.announce is not None:
                await announce(conn, self.announce, jobs)
            return jobs
        values = dict(params or {})
        if self.log is not None:
            values.update(logged_at=at, log_message=message)
        result = await conn.execute(self._statement, values)
        return [
            Job.from_row({key: value for key, value in row.items() if key != _NOTIFIED})
            for row in result.mappings()
        ]


async def change_jobs(
    conn: AsyncConnection,
    statement: Update | Insert,
    params: dict[str, Any] | None = None,
    *,
    at: datetime,
    log: LogLine | None,
    announce: str | None,
) -> list[Job]:
    """Run ``statement`` once as a :class:`Transition` (for the queue's rarer operations)."""
    transition = Transition(
        statement,
        dialect=conn.dialect.name,
        log=log.kind if log else None,
        announce=announce,
    )
    return await transition.run(conn, params, at=at, message=log.message if log else "")


async def write_log(
    conn: AsyncConnection,
    job_ids: Sequence[int],
    at: datetime,
    kind: str,
    message: str,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one line to each job's event log."""
    if not job_ids:
        return
    await conn.execute(
        insert(EVENTS),
        [{"job_id": j, "at": at, "kind": kind, "message": message, "data": data} for j in job_ids],
    )


async def announce(conn: AsyncConnection, kind: str, jobs: Sequence[Job]) -> None:
    """Publish ``kind`` for jobs that were not changed by :func:`change_jobs` (delivered at
    commit)."""
    await publish(conn, *(announcement(kind, job) for job in jobs))

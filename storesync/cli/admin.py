"""Operator commands mirroring the seed's monitoring and troubleshooting SQL."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from storesync.cli.common import (
    JobIdArgument,
    StoreIdFilter,
    console,
    load_settings,
    open_database,
    print_json,
    run,
    when,
)
from storesync.queue import JobQueue, JobStatus
from storesync.queue.stats import queue_stats
from storesync.storage.engine import mask_url
from storesync.storage.migrate import current_revision

STATUS_STYLE = {
    "queued": "yellow",
    "processing": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "dim",
}

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def init() -> None:
    """Create or upgrade the database schema."""
    settings = load_settings()

    async def main() -> str | None:
        async with open_database(settings) as database:
            return await current_revision(database)

    revision = run(main)
    console.print(
        f"database {mask_url(settings.resolved_database_url)} is at schema revision {revision}",
        highlight=False,
    )


def jobs(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs with this status.")] = None,
    store: StoreIdFilter = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, newest first (the seed's "Ver jobs na fila")."""
    settings = load_settings()

    async def main() -> list[dict[str, object]]:
        async with open_database(settings) as database:
            found = await JobQueue(database, settings).list_jobs(
                status=status, store_id=store, limit=limit
            )
            return [job.to_json() for job in found]

    rows = run(main)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} job(s)")
    for column in ("id", "store", "status", "prio", "period", "tries", "queued", "error"):
        table.add_column(column)
    for row in rows:
        status_text = str(row["status"])
        table.add_row(
            str(row["id"]),
            str(row["store_id"]),
            f"[{STATUS_STYLE[status_text]}]{status_text}[/]",
            str(row["priority"]),
            f"{row['period_start']}..{row['period_end']}",
            str(row["retry_count"]),
            str(row["queued_at"])[:19].replace("T", " "),
            str(row["error_message"] or ""),
        )
    console.print(table)


def stats(as_json: JsonFlag = False) -> None:
    """Queue counts, durations, failure rate and live workers (``v_sync_queue_stats``)."""
    settings = load_settings()

    async def main() -> dict[str, object]:
        async with open_database(settings) as database:
            return (await queue_stats(database, settings)).to_json()

    report = run(main)
    if as_json:
        print_json(report)
        return
    counts = Table(title="sync_queue")
    for column in ("queued", "processing", "completed", "failed", "cancelled"):
        counts.add_column(column, justify="right")
    counts.add_row(
        *(str(report[c]) for c in ("queued", "processing", "completed", "failed", "cancelled"))
    )
    console.print(counts)
    console.print(
        f"oldest queued: {_seconds(report['oldest_queued_seconds'])}   "
        f"avg duration (24 h): {_seconds(report['avg_duration_seconds_24h'])}   "
        f"p95 (24 h): {_seconds(report['p95_duration_seconds_24h'])}   "
        f"failure rate (24 h): {_percent(report['failure_rate_24h'])}",
        highlight=False,
    )
    workers = report["workers"]
    assert isinstance(workers, list)
    table = Table(title=f"{len(workers)} live worker(s)")
    for column in ("worker", "host", "pid", "running", "scheduler", "last heartbeat"):
        table.add_column(column)
    for w in workers:
        table.add_row(
            w["id"],
            w["hostname"],
            str(w["pid"]),
            f"{w['jobs_running']}/{w['concurrency']}",
            "yes" if w["is_scheduler"] else "",
            str(w["last_heartbeat"])[:19].replace("T", " "),
        )
    console.print(table)
    for problem in report["diagnosis"]:  # type: ignore[attr-defined]
        console.print(f"[bold red]{problem}[/]", highlight=False)


def cleanup(as_json: JsonFlag = False) -> None:
    """Take back stuck processing jobs (lapsed heartbeat or past the hard timeout)."""
    settings = load_settings()

    async def main() -> dict[str, list[int]]:
        async with open_database(settings) as database:
            report = await JobQueue(database, settings).rescue()
            return {"requeued": list(report.requeued), "failed": list(report.failed)}

    result = run(main)
    if as_json:
        print_json(result)
        return
    console.print(
        f"requeued {len(result['requeued'])} job(s) {result['requeued'] or ''}; "
        f"failed {len(result['failed'])} job(s) {result['failed'] or ''} (attempts used up)",
        highlight=False,
    )


def prune(
    older_than_days: Annotated[
        float,
        # At most a century: a larger age is no date at all (and overflows date arithmetic).
        typer.Option(min=0, max=36_500, help="Delete finished jobs older than this many days."),
    ] = 30,
    as_json: JsonFlag = False,
) -> None:
    """Delete finished jobs and their event logs older than N days."""
    settings = load_settings()

    async def main() -> int:
        async with open_database(settings) as database:
            return await JobQueue(database, settings).prune(older_than_days)

    deleted = run(main)
    if as_json:
        print_json({"deleted": deleted})
    else:
        console.print(f"deleted {deleted} finished job(s) older than {older_than_days:g} days")


def logs(job_id: JobIdArgument, as_json: JsonFlag = False) -> None:
    """Print a job's event log."""
    settings = load_settings()

    async def main() -> list[dict[str, object]]:
        async with open_database(settings) as database:
            return await JobQueue(database, settings).events(job_id)

    events = run(main)
    if as_json:
        print_json(events)
        return
    table = Table(title=f"job {job_id}")
    for column in ("at", "event", "message"):
        table.add_column(column)
    for event in events:
        table.add_row(when(event["at"]), str(event["kind"]), str(event["message"] or ""))  # type: ignore[arg-type]
    console.print(table)


def _seconds(value: object) -> str:
    return "-" if value is None else f"{float(value):.1f} s"  # type: ignore[arg-type]


def _percent(value: object) -> str:
    return "-" if value is None else f"{float(value) * 100:.1f} %"  # type: ignore[arg-type]

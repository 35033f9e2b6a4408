"""``storesync sync``, ``storesync cache …``: ask for data and look at what is cached."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from storesync.cache import Cache, Freshness, dashboard_json
from storesync.cli.common import (
    StoreIdArgument,
    StoreIdFilter,
    console,
    errors,
    load_settings,
    open_database,
    print_json,
    run,
    when,
)
from storesync.errors import StoresyncError
from storesync.periods import Period
from storesync.queue import Job, JobQueue, JobStatus, Reason
from storesync.settings import Settings
from storesync.storage.crypto import SecretBox
from storesync.storage.engine import Database
from storesync.stores import StoreDirectory

cache_app = typer.Typer(help="Look at cached dashboard data.", no_args_is_help=True)

Start = Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD (store's time zone).")]
End = Annotated[str, typer.Option("--end", help="Last day, YYYY-MM-DD, inclusive.")]


def _period(start: str, end: str, settings: Settings) -> Period:
    return Period.parse(start, end, max_days=settings.max_period_days, names=("--start", "--end"))


def sync(
    store_id: StoreIdArgument,
    start: Start,
    end: End,
    force: Annotated[bool, typer.Option(help="Sync even when the cache is fresh.")] = False,
    wait: Annotated[bool, typer.Option(help="Show progress and wait for the outcome.")] = False,
    inline: Annotated[
        bool, typer.Option(help="Run the job in this process instead of a worker.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
) -> None:
    """Queue a sync of one store and period (answered from the cache when it is fresh)."""
    settings = load_settings()

    async def main() -> Job | None:
        period = _period(start, end, settings)
        async with open_database(settings) as database:
            stores = StoreDirectory(database, SecretBox.from_settings(settings))
            store = await stores.get(store_id)
            if not force:
                cached = await Cache(database).get(store_id, period)
                now = datetime.now(UTC)
                if cached.freshness(now, needs_klaviyo=store.has_klaviyo) is Freshness.FRESH:
                    console.print(
                        f"store {store_id} {period} is fresh in the cache (synced "
                        f"{when(cached.synced_at)}); nothing queued. Use --force to sync anyway.",
                        highlight=False,
                    )
                    return None
            queue = JobQueue(database, settings)
            enqueued = await queue.enqueue(
                store_id, period.start, period.end, reason=Reason.USER, force=force
            )
            job = enqueued.job
            verb = "queued" if enqueued.created else "already queued as"
            console.print(f"{verb} job {job.id} ({job.status.value})", highlight=False)
            if inline:
                job = await _run_inline(database, settings, job)
            elif wait:
                job = await _follow(queue, job)
            return job

    job = run(main)
    if job is None:
        return
    if as_json:
        print_json(job.to_json())
    if wait or inline:
        if job.status is JobStatus.COMPLETED:
            console.print(f"job {job.id} completed", highlight=False)
        else:
            errors.print(f"job {job.id} {job.status.value}: {job.error_message}", highlight=False)
            raise typer.Exit(1)
    if not as_json:
        typer.echo(job.id)


async def _follow(queue: JobQueue, job: Job) -> Job:
    """Show the job's progress until it finishes."""
    with _progress_bar() as bar:
        task = bar.add_task(f"job {job.id}", total=100)
        while not job.is_finished:
            percent = (job.progress or {}).get("percent", 0)
            bar.update(task, completed=percent, description=f"job {job.id} {job.status.value}")
            await asyncio.sleep(0.3)
            job = await queue.get(job.id)
        bar.update(task, completed=100 if job.status is JobStatus.COMPLETED else percent)
    return job


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


async def _run_inline(database: Database, settings: Settings, job: Job) -> Job:
    """Claim this one job and run it here, heart-beating its lease like a worker would."""
    # Imported here: the connectors are heavy, and most commands never need them.
    from storesync.sync.pipeline import SyncPipeline
    from storesync.sync.services import sync_services

    worker_id = f"inline:{job.id}"
    async with sync_services(database, settings) as services:
        queue = services.queue
        while True:
            claimed = await queue.claim(worker_id, 1, only=job.id)
            if claimed:
                break
            job = await queue.get(job.id)
            if job.is_finished or job.status is JobStatus.PROCESSING:
                return await _follow(queue, job)  # someone else is running it
            await asyncio.sleep(settings.poll_interval_seconds)  # waiting for a free slot

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(settings.lease_seconds / 3)
                with contextlib.suppress(StoresyncError):
                    await queue.heartbeat(worker_id, [job.id])

        beating = asyncio.create_task(heartbeat())
        try:
            follower = asyncio.create_task(_follow(queue, claimed[0]))
            await SyncPipeline(services).run(claimed[0], worker_id)
            return await follower
        finally:
            beating.cancel()


@cache_app.command("list")
def cache_list(
    store: StoreIdFilter = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Cached rows, newest first (the seed's "Ver cache")."""
    settings = load_settings()

    async def main() -> list[dict[str, Any]]:
        async with open_database(settings) as database:
            rows = await Cache(database).list_rows(store_id=store, limit=limit)
        now = datetime.now(UTC)
        return [
            {
                "store_id": r.store_id,
                "data_type": r.data_type,
                "period_start": r.period.start.isoformat(),
                "period_end": r.period.end.isoformat(),
                "source": r.source,
                "synced_at": r.synced_at.isoformat(),
                "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                "fresh": r.is_fresh(now),
                "job_id": r.job_id,
            }
            for r in rows
        ]

    rows = run(main)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} cached row(s)")
    for column in ("store", "type", "period", "synced", "expires", "fresh", "job"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["store_id"]),
            r["data_type"],
            f"{r['period_start']}..{r['period_end']}",
            r["synced_at"][:19].replace("T", " "),
            (r["expires_at"] or "final")[:19].replace("T", " "),
            "yes" if r["fresh"] else "[yellow]stale[/]",
            str(r["job_id"] or ""),
        )
    console.print(table)


@cache_app.command("show")
def cache_show(
    store_id: StoreIdArgument,
    start: Start,
    end: End,
    as_json: Annotated[bool, typer.Option("--json", help="Print the dashboard JSON.")] = False,
) -> None:
    """The dashboard for one store and period, from the cache."""
    settings = load_settings()

    async def main() -> dict[str, Any]:
        period = _period(start, end, settings)
        async with open_database(settings) as database:
            store = await StoreDirectory(database, SecretBox.from_settings(settings)).get(store_id)
            cache = Cache(database)
            current = await cache.get(store_id, period)
            previous = await cache.get(store_id, period.previous())
        return dashboard_json(
            store_id=store_id,
            currency=store.currency,
            current=current,
            previous=previous,
            now=datetime.now(UTC),
            needs_klaviyo=store.has_klaviyo,
        )

    document = run(main)
    if as_json:
        print_json(document)
        if document["shopify"] is None:
            raise typer.Exit(1)
        return
    if document["shopify"] is None:
        errors.print(
            f"nothing cached for store {store_id} {start}..{end}: run `storesync sync {store_id} "
            f"--start {start} --end {end} --wait`",
            highlight=False,
        )
        raise typer.Exit(1)
    _print_dashboard(document)


def _print_dashboard(document: dict[str, Any]) -> None:
    currency = document["currency"]
    summary = document["summary"]
    meta = document["meta"]
    state = "[yellow]stale[/]" if meta["stale"] else "[green]fresh[/]"
    console.print(
        f"store {document['store_id']}  {document['period_start']}..{document['period_end']}  "
        f"synced {document['synced_at']}  {state}"
    )
    kpis = Table(show_header=True)
    for column in ("total sales", "orders", "AOV", "Klaviyo revenue", "share"):
        kpis.add_column(column, justify="right")
    share = summary["attributed_share"]
    attributed = summary["attributed_revenue"]
    kpis.add_row(
        f"{summary['total_sales']} {currency}",
        str(summary["orders"]),
        f"{summary['aov']} {currency}",
        f"{attributed} {currency}" if attributed else "-",
        f"{float(share) * 100:.1f} %" if share else "-",
    )
    console.print(kpis)
    klaviyo = document["klaviyo"]
    if klaviyo:
        for kind in ("campaigns", "flows"):
            table = Table(title=kind)
            for column in (
                "name",
                "channel",
                "recipients",
                "open rate",
                "click rate",
                "conv.",
                "revenue",
            ):
                table.add_column(column, justify="right" if column != "name" else "left")
            for item in klaviyo[kind]:
                table.add_row(
                    item["name"], item["channel"], str(item["recipients"]),
                    f"{float(item['open_rate']) * 100:.1f} %",
                    f"{float(item['click_rate']) * 100:.1f} %",
                    str(item["conversions"]), item["conversion_value"],
                )  # fmt: skip
            console.print(table)

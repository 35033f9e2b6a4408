"""A store's dashboard for one period: the seed's useDashboardData, on the server.

Cache first: what the cache holds is shown at once. A stale view says so and queues a
refresh itself (stale-while-revalidate; the page reloads its figures when the job completes).
Nothing cached: the page says so and the Sync button queues the job. The state of the period's
latest job is shown above the figures: waiting, running (with its progress), deferred (a spent
Klaviyo budget) or failed (with the provider's message).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from storesync.cache import KLAVIYO, Freshness
from storesync.dashboards import Dashboards
from storesync.periods import Period
from storesync.queue import Job, JobStatus
from storesync.stores import StoreInfo
from storesync.web import format as fmt
from storesync.web.chart import Chart, daily_chart
from storesync.web.picker import PickedPeriod
from storesync.web.tables import SortedTable, message_table

BUDGET_SPENT = "report budget used up"


@dataclass(frozen=True, slots=True)
class Kpi:
    label: str
    value: str
    change: tuple[str, str] | None
    previous: str | None
    note: str | None = None
    key: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    """A line above the figures: what the cache and the latest job say."""

    kind: str  # fresh, stale, missing, queued, syncing, deferred, failed, cancelled
    text: str
    job: Job | None = None
    percent: int | None = None
    settings_link: bool = False


@dataclass(slots=True)
class DashboardView:
    store: StoreInfo
    picked: PickedPeriod
    currency: str | None
    freshness: Freshness
    synced_at: datetime | None
    expires_at: datetime | None
    notices: list[Notice] = field(default_factory=list)
    kpis: list[Kpi] = field(default_factory=list)
    chart: Chart | None = None
    campaigns: SortedTable | None = None
    flows: SortedTable | None = None
    previous_period: Period | None = None
    klaviyo_missing: bool = False

    @property
    def active_job(self) -> Job | None:
        return next(
            (n.job for n in self.notices if n.job is not None and not n.job.is_finished), None
        )


@dataclass(frozen=True, slots=True)
class Sorting:
    """How the campaign and flow tables are sorted (from the query)."""

    campaigns: tuple[str, str] = ("revenue", "desc")
    flows: tuple[str, str] = ("revenue", "desc")


async def load_dashboard(
    dashboards: Dashboards,
    store: StoreInfo,
    picked: PickedPeriod,
    sorting: Sorting,
    *,
    refresh_stale: bool = True,
) -> DashboardView:
    """Read the cache for the period (and the previous one), and the period's latest job.

    Stale figures queue their refresh (see :mod:`storesync.dashboards`; at the account's cap
    they still show, unrefreshed); nothing cached queues nothing: the page offers Sync.
    """
    read = await dashboards.read(
        store, picked.period, queue_missing=False, refresh_stale=refresh_stale, include_job=True
    )
    document = read.document()
    rows = read.current.rows
    expiries = [r.expires_at for r in rows.values() if r.expires_at is not None]
    freshness = read.freshness
    view = DashboardView(
        store=store,
        picked=picked,
        currency=document["currency"],
        freshness=freshness,
        synced_at=read.current.synced_at,
        expires_at=min(expiries) if expiries and freshness is Freshness.FRESH else None,
        previous_period=read.previous.period,
        klaviyo_missing=store.has_klaviyo and KLAVIYO not in rows and bool(rows),
    )
    view.notices = notices(view, read.job, read.now)
    view.kpis = kpis(document)
    if document["shopify"]:
        view.chart = daily_chart(document["shopify"].get("daily") or [], view.currency)
    if document["klaviyo"]:
        view.campaigns = message_table(
            document["klaviyo"]["campaigns"], view.currency, *sorting.campaigns
        )
        view.flows = message_table(document["klaviyo"]["flows"], view.currency, *sorting.flows)
    return view


def notices(view: DashboardView, job: Job | None, now: datetime) -> list[Notice]:
    """The lines above the figures, most important first."""
    tz = ZoneInfo(view.store.timezone)
    found: list[Notice] = []
    if job is not None:
        notice = job_notice(job, tz, now)
        # A failure older than the figures shown is history, not news.
        newer = view.synced_at is None or (
            job.completed_at is not None and job.completed_at >= view.synced_at
        )
        if notice is not None and (not job.is_finished or newer):
            found.append(notice)
    refreshing = any(n.kind in ("queued", "syncing") for n in found)
    if view.freshness is Freshness.MISSING:
        if not found:
            found.append(
                Notice("missing", "Nothing is cached for this period yet: press Sync to fetch it.")
            )
    elif view.freshness is Freshness.STALE:
        age = fmt.ago(view.synced_at, now)
        tail = " Refreshing now…" if refreshing else ""
        found.append(
            Notice("stale", f"These figures are stale: synced {age} and out of date.{tail}")
        )
    else:
        found.append(
            Notice(
                "fresh",
                f"Fresh: synced {fmt.ago(view.synced_at, now)} "
                f"({fmt.clock(view.synced_at, tz)}, {view.store.timezone}).",
            )
        )
    if view.klaviyo_missing and not any(n.kind == "deferred" for n in found):
        found.append(Notice("stale", "Klaviyo figures are not synced for this period yet."))
    return found


def job_notice(job: Job, tz: ZoneInfo, now: datetime) -> Notice | None:
    """What the period's latest job means for the person looking at the dashboard."""
    message = job.error_message or ""
    if job.status is JobStatus.PROCESSING:
        percent = int((job.progress or {}).get("percent") or 0)
        return Notice("syncing", f"Syncing… {percent}% done.", job, percent)
    if job.status is JobStatus.QUEUED:
        if job.run_after > now and BUDGET_SPENT in message:
            return Notice(
                "deferred",
                f"Klaviyo sync deferred: report budget used up until "
                f"{fmt.clock(job.run_after, tz)} ({tz.key}). It will run by itself then.",
                job,
            )
        if job.run_after > now and message:
            return Notice(
                "queued",
                f"The last attempt failed ({message}); retrying at {fmt.clock(job.run_after, tz)}.",
                job,
            )
        return Notice("queued", "Sync queued: waiting for a worker…", job, 0)
    if job.status is JobStatus.FAILED:
        return Notice(
            "failed",
            f"The last sync failed: {message or 'no reason was recorded'}",
            job,
            settings_link="settings" in message,
        )
    if job.status is JobStatus.CANCELLED:
        return Notice("cancelled", "The last sync of this period was cancelled.", job)
    return None


def kpis(document: dict[str, Any]) -> list[Kpi]:
    """The five KPI cards, each with its change against the previous period when cached."""
    current = document.get("summary")
    if not current:
        return []  # no Shopify figures: nothing to put on the cards
    before = (document.get("previous") or {}).get("summary") or {}
    currency = document.get("currency")

    def money_card(key: str, label: str) -> Kpi:
        previous = before.get(key)
        return Kpi(
            label,
            fmt.money(current.get(key), currency),
            fmt.change(current.get(key), previous),
            fmt.money(previous, currency) if previous is not None else None,
            key=key,
        )

    orders_before = before.get("orders")
    return [
        money_card("total_sales", "Total sales"),
        Kpi(
            "Orders",
            fmt.count(current.get("orders")),
            fmt.change(current.get("orders"), orders_before),
            fmt.count(orders_before) if orders_before is not None else None,
            key="orders",
        ),
        money_card("aov", "Average order value"),
        money_card("attributed_revenue", "Klaviyo-attributed revenue"),
        Kpi(
            "Attributed share of sales",
            fmt.percent(current.get("attributed_share")),
            fmt.points(current.get("attributed_share"), before.get("attributed_share")),
            fmt.percent(before["attributed_share"]) if before.get("attributed_share") else None,
            key="attributed_share",
        ),
    ]

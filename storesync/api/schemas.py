"""Request and response bodies of the HTTP API (their JSON Schemas are the OpenAPI document).

Names follow the ``XxxCreate / XxxUpdate / XxxPublic`` convention. Nothing here ever carries a
credential out: store tokens and keys appear only in the write models, as ``SecretStr`` marked
``writeOnly``, and no ``Public`` model has a field for them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from storesync import store_rules
from storesync.queue import Job, JobStatus, Reason
from storesync.storage.types import MAX_ID as MAX_ID  # ids in paths and queries stop there
from storesync.stores import StoreInfo


def _printable(value: str) -> str:
    # NUL and lone surrogates cannot be stored by PostgreSQL or encoded for SQLite; reject
    # them here so that they are a 422, never a database error.
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


def _printable_secret(value: SecretStr) -> SecretStr:
    _printable(value.get_secret_value())
    return value


Text = Annotated[str, AfterValidator(_printable)]
Secret = Annotated[SecretStr, AfterValidator(_printable_secret)]


# Store fields: the limits come from storesync.store_rules, whose rules StoreDirectory applies
# to every add and update (so the API, the web form and the CLI refuse the same values, and the
# API's 422 says it in the same words as the others).
StoreName = Annotated[
    str, Field(min_length=1, max_length=store_rules.NAME_MAX), AfterValidator(_printable)
]
TimeZoneName = Annotated[
    str, Field(min_length=1, max_length=store_rules.TIMEZONE_MAX), AfterValidator(_printable)
]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217, such as USD.")]
StoreSecret = Annotated[
    SecretStr,
    Field(min_length=1, max_length=store_rules.SECRET_MAX, json_schema_extra={"writeOnly": True}),
    AfterValidator(_printable_secret),
]


class ErrorOut(BaseModel):
    """Every error answer: one sentence that says what is wrong."""

    detail: str = Field(examples=["store 7 does not exist"])


# -- stores ----------------------------------------------------------------------------------


class StoreCreate(BaseModel):
    """A new store. The credentials are stored encrypted and never returned."""

    model_config = ConfigDict(extra="forbid")

    name: StoreName = Field(examples=["Acme Outdoors"])
    shopify_domain: Text = Field(
        min_length=1,
        max_length=store_rules.DOMAIN_MAX,
        examples=["acme.myshopify.com"],
        description="The shop's name.myshopify.com domain (no port or path).",
    )
    shopify_token: StoreSecret
    klaviyo_key: StoreSecret | None = None
    timezone: TimeZoneName = Field(examples=["America/New_York"])
    currency: CurrencyCode | None = Field(
        default=None, description="ISO 4217; learned on first sync."
    )
    refresh_periods: list[Text] | None = Field(
        default=None,
        max_length=20,
        description="Named periods the scheduler keeps fresh (default today, last_7_days, "
        "last_30_days).",
    )


class StoreUpdate(BaseModel):
    """Changes to a store; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: StoreName | None = None
    shopify_token: StoreSecret | None = None
    klaviyo_key: StoreSecret | None = None
    timezone: TimeZoneName | None = None
    currency: CurrencyCode | None = None
    refresh_periods: list[Text] | None = Field(default=None, max_length=20)


class StorePublic(BaseModel):
    """A store as the API shows it: everything but its credentials."""

    id: int
    account: str
    name: str
    shopify_domain: str
    timezone: str
    currency: str | None
    refresh_periods: list[str]
    has_klaviyo: bool
    created_at: datetime

    @classmethod
    def of(cls, store: StoreInfo) -> StorePublic:
        return cls(
            id=store.id,
            account=store.account,
            name=store.name,
            shopify_domain=store.shopify_domain,
            timezone=store.timezone,
            currency=store.currency,
            refresh_periods=list(store.refresh_periods),
            has_klaviyo=store.has_klaviyo,
            created_at=store.created_at,
        )


class StorePage(BaseModel):
    items: list[StorePublic]
    limit: int
    offset: int
    next_offset: int | None = Field(
        description="Pass as offset for the next page; null at the end."
    )


# -- jobs ------------------------------------------------------------------------------------


class SyncRequest(BaseModel):
    """What ``POST /api/stores/{id}/sync`` should fetch: dates in the store's time zone."""

    model_config = ConfigDict(extra="forbid")

    start: Text = Field(
        description="First day, YYYY-MM-DD.",
        examples=["2025-07-01"],
        json_schema_extra={"format": "date"},
    )
    end: Text = Field(
        description="Last day, YYYY-MM-DD, inclusive.",
        examples=["2025-07-31"],
        json_schema_extra={"format": "date"},
    )
    force: bool = Field(default=False, description="Refetch even what is cached and final.")


class JobProgress(BaseModel):
    """How far a sync has got (the bulky resume checkpoint is not shown)."""

    percent: int | None = None
    chunks_total: int | None = None
    chunks_done: int | None = None


class JobPublic(BaseModel):
    """One refresh of one store and period (a ``sync_queue`` row)."""

    id: int
    store_id: int
    status: JobStatus
    priority: int
    reason: Reason
    period_start: date
    period_end: date
    force: bool
    retry_count: int
    queued_at: datetime
    run_after: datetime
    started_at: datetime | None
    completed_at: datetime | None
    worker_id: str | None
    cancel_requested: bool
    error_message: str | None
    progress: JobProgress | None

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        return cls(
            id=job.id,
            store_id=job.store_id,
            status=job.status,
            priority=job.priority,
            reason=job.reason,
            period_start=job.period_start,
            period_end=job.period_end,
            force=job.force,
            retry_count=job.retry_count,
            queued_at=job.queued_at,
            run_after=job.run_after,
            started_at=job.started_at,
            completed_at=job.completed_at,
            worker_id=job.worker_id,
            cancel_requested=job.cancel_requested,
            error_message=job.error_message,
            progress=_progress(job.progress),
        )


def _progress(raw: dict[str, Any] | None) -> JobProgress | None:
    if raw is None:
        return None
    numbers = {k: raw.get(k) for k in ("percent", "chunks_total", "chunks_done")}
    return JobProgress(**{k: int(v) for k, v in numbers.items() if isinstance(v, int | float)})


class JobEventPublic(BaseModel):
    """One line of a job's event log."""

    at: datetime
    kind: str
    message: str | None
    data: dict[str, Any] | None


class JobDetail(JobPublic):
    """A job with its event log, oldest first."""

    events: list[JobEventPublic]


class JobPage(BaseModel):
    items: list[JobPublic]
    limit: int
    offset: int
    next_offset: int | None = Field(
        description="Pass as offset for the next page; null at the end."
    )


# -- queue -----------------------------------------------------------------------------------


class WorkerPublic(BaseModel):
    id: str | None = Field(description="The worker's id (host:pid:…); admin-scope tokens only.")
    hostname: str | None = Field(description="Admin-scope tokens only; null otherwise.")
    pid: int | None = Field(description="Admin-scope tokens only; null otherwise.")
    concurrency: int
    jobs_running: int
    is_scheduler: bool
    started_at: datetime
    last_heartbeat: datetime


class QueueStatsPublic(BaseModel):
    """The caller's account's jobs in the queue (counts, durations, failure rate), the live
    workers (hosts and pids for admin-scope tokens only) and a diagnosis."""

    queued: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    oldest_queued_seconds: float | None
    avg_duration_seconds_24h: float | None
    p95_duration_seconds_24h: float | None
    failure_rate_24h: float | None
    workers: list[WorkerPublic]
    diagnosis: list[str] = Field(description="Plain statements of what looks wrong, if anything.")


# -- tokens ----------------------------------------------------------------------------------


class TokenCreate(BaseModel):
    """A new API token of the caller's account (scope normal: admin tokens come from the
    command line only)."""

    model_config = ConfigDict(extra="forbid")

    label: Text | None = Field(default=None, max_length=200, description="What it is for.")
    expires_in_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        strict=True,  # `true` is not a number of days
        description="Days until it stops working; null: never.",
    )


class TokenPublic(BaseModel):
    """An API token as it may be shown: never the token itself."""

    id: int
    label: str | None
    scope: Literal["normal", "admin"]
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="Last request with it (recorded at most once a minute)."
    )
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool = Field(description="Neither revoked nor expired.")


class TokenCreated(TokenPublic):
    token: str = Field(description="The token: shown this once, only its hash is stored.")


class TokenList(BaseModel):
    items: list[TokenPublic]


# -- dashboard -------------------------------------------------------------------------------

Money = Annotated[
    str, Field(description="Exact decimal in the shop's currency.", examples=["12.50"])
]


class DailySalesOut(BaseModel):
    date: date
    orders: int
    total_sales: Money


class ShopifyFiguresOut(BaseModel):
    """Sales of orders created in the period (definitions in docs/metrics.md)."""

    model_config = ConfigDict(extra="allow")

    currency: str
    orders: int
    total_sales: Money
    gross_sales: Money
    discounts: Money
    refunds: Money
    aov: Money
    new_customers: int
    returning_customers: int
    daily: list[DailySalesOut]


class MessageStatsOut(BaseModel):
    """One campaign's or flow's performance over the period."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    channel: str
    recipients: int
    delivered: int
    opens_unique: int
    open_rate: str
    clicks_unique: int
    click_rate: str
    conversions: int
    conversion_value: Money
    unsubscribes: int


class KlaviyoFiguresOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    campaign_revenue: Money
    flow_revenue: Money
    attributed_revenue: Money
    campaigns: list[MessageStatsOut]
    flows: list[MessageStatsOut]


class SummaryOut(BaseModel):
    total_sales: Money
    orders: int
    aov: Money
    attributed_revenue: Money | None
    attributed_share: str | None = Field(description="attributed_revenue / total_sales, 0–1.")


class PreviousPeriodOut(BaseModel):
    period_start: date
    period_end: date
    summary: SummaryOut | None


class DashboardMeta(BaseModel):
    synced_at: datetime | None
    stale: bool = Field(description="True when a refresh is due; one has been queued.")
    final: bool = Field(description="The period is settled: its cache does not expire by time.")
    missing: list[str] = Field(description="Data types not cached yet (e.g. klaviyo).")
    refresh_job_id: int | None = Field(
        default=None,
        description="When stale: the job refreshing this period (or its last refresh, if that "
        "failed less than 5 minutes ago and nothing new was queued).",
    )


class DashboardOut(BaseModel):
    """The dashboard document of one store and period, as ``storesync cache show --json``."""

    store_id: int
    period_start: date
    period_end: date
    currency: str | None
    synced_at: datetime | None
    shopify: ShopifyFiguresOut | None
    klaviyo: KlaviyoFiguresOut | None
    summary: SummaryOut | None
    previous: PreviousPeriodOut | None
    meta: DashboardMeta


# -- webhooks and health ---------------------------------------------------------------------


class WebhookOutcome(BaseModel):
    status: Literal["processed", "duplicate", "ignored"]
    stale_marked: int = Field(default=0, description="Cached periods marked stale.")
    jobs_queued: int = Field(default=0, description="Refreshes queued (or already waiting).")


class Health(BaseModel):
    status: Literal["ok"]
    database: str
    worker: Literal["running", "stopped", "disabled"]

"""The declared schema. Alembic migrations build exactly this (a test compares them).

Table and column names follow the seed (``sync_queue``, ``store_sync_cache``, ``retry_count``,
``queued_at``…) so that its monitoring and cleanup SQL runs unchanged.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storesync.storage.types import BigId, Json, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JOB_STATUSES = ("queued", "processing", "completed", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "processing")
JOB_REASONS = ("user", "schedule", "webhook")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Account(Base):
    """A tenant: owns stores and API tokens."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token for the HTTP API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("scope IN ('normal', 'admin')", name="scope"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "normal" acts for its account; "admin" also sees operational data (workers' hosts and
    # pids, /metrics). Only the command line creates admin tokens.
    scope: Mapped[str] = mapped_column(String(16), server_default="normal")
    #: NULL: never expires.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set once revoked; the row is kept so that listings show when and that it was revoked.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A signed-in browser session. The cookie names it; signing out deletes it, so a copied
    cookie is worthless afterwards. Only the SHA-256 of the cookie's nonce is stored."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Store(Base):
    """A Shopify store and the Klaviyo account behind it. Credentials are encrypted."""

    __tablename__ = "stores"
    __table_args__ = (
        UniqueConstraint("account_id", "shopify_domain"),
        # One shop, one store, across accounts (migration 0002). The per-account constraint
        # above is implied by it now; it stays because dropping it would rebuild the table
        # on SQLite.
        Index("uq_stores_shopify_domain", "shopify_domain", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    shopify_domain: Mapped[str] = mapped_column(String(255))
    shopify_token_encrypted: Mapped[str] = mapped_column(Text)
    klaviyo_key_encrypted: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str | None] = mapped_column(String(3))
    refresh_periods: Mapped[list[str]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SyncJob(Base):
    """One refresh of one store and period: the seed's ``sync_queue`` row."""

    __tablename__ = "sync_queue"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')",
            name="status",
        ),
        CheckConstraint("reason IN ('user', 'schedule', 'webhook')", name="reason"),
        CheckConstraint("period_end >= period_start", name="period"),
        # De-duplication: at most one queued-or-processing job per store and period.
        Index(
            "uq_sync_queue_active_period",
            "store_id",
            "period_start",
            "period_end",
            unique=True,
            sqlite_where=text("status IN ('queued', 'processing')"),
            postgresql_where=text("status IN ('queued', 'processing')"),
        ),
        # One job per store at a time, guaranteed by the database whatever the claimer does.
        Index(
            "uq_sync_queue_processing_store",
            "store_id",
            unique=True,
            sqlite_where=text("status = 'processing'"),
            postgresql_where=text("status = 'processing'"),
        ),
        Index(
            "ix_sync_queue_claimable",
            "priority",
            "queued_at",
            sqlite_where=text("status = 'queued'"),
            postgresql_where=text("status = 'queued'"),
        ),
        Index("ix_sync_queue_status_completed_at", "status", "completed_at"),
        Index("ix_sync_queue_store_id_queued_at", "store_id", "queued_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    priority: Mapped[int] = mapped_column(Integer, server_default="0")
    reason: Mapped[str] = mapped_column(String(16), server_default="user")
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    force: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    retry_count: Mapped[int] = mapped_column(Integer, server_default="0")
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    error_message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[dict[str, Any] | None] = mapped_column(Json)


class JobEvent(Base):
    """One line of a job's event log (claimed, chunk done, throttled, retried, …)."""

    __tablename__ = "sync_job_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("sync_queue.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(Json)


class CacheEntry(Base):
    """Cached dashboard data: one row per store, data type and period (the seed's table)."""

    __tablename__ = "store_sync_cache"
    __table_args__ = (UniqueConstraint("store_id", "data_type", "period_start", "period_end"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    data_type: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # NULL: final, never expires by time (only a webhook or a forced refresh replaces it).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stale: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("sync_queue.id", ondelete="SET NULL"))


class Worker(Base):
    """A live worker process, registered with a heartbeat."""

    __tablename__ = "sync_workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer)
    jobs_running: Mapped[int] = mapped_column(Integer, server_default="0")
    is_scheduler: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_heartbeat: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Lease(Base):
    """A named, expiring lease (for example the single active scheduler)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class KlaviyoReportBudget(Base):
    """Reporting API calls spent per Klaviyo account and UTC day (225 a day allowed)."""

    __tablename__ = "klaviyo_report_budget"

    account_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, server_default="0")


class ProviderCache(Base):
    """Small facts learned from providers and worth keeping (a Klaviyo metric id, …)."""

    __tablename__ = "provider_cache"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(Json)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """Shopify webhook deliveries already handled, so repeated ones are ignored: by id, and
    by the SHA-256 of the body (the same signed body under a new id or another shop)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("uq_webhook_deliveries_body_sha256", "body_sha256", unique=True),)

    webhook_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Hex SHA-256 of the raw body; NULL only in deliveries recorded before migration 0002.
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    shop_domain: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def table_of(model: type[Base]) -> Table:
    """The Core :class:`Table` of a model, typed for use in Core statements."""
    table = model.__table__
    assert isinstance(table, Table)
    return table

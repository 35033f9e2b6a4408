"""The one typed settings object.

Every setting is an environment variable with the ``STORESYNC_`` prefix (a ``.env`` file in the
working directory is read too). Build a :class:`Settings` at the program's edge and pass it in;
nothing in the package creates one at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storesync.store_rules import allowed_hosts

#: The Klaviyo API revisions the connector's requests are written for (docs/providers.md says
#: how to move to a new one). Klaviyo answers with the shapes of the revision a request names,
#: so a revision the code was not checked against would be read wrongly: it is refused.
SUPPORTED_KLAVIYO_REVISIONS = ("2026-10-15",)


class Settings(BaseSettings):
    """Configuration for every storesync process (server, worker, CLI)."""

    model_config = SettingsConfigDict(
        env_prefix="STORESYNC_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(
        default=Path(".storesync"),
        description="Where the default SQLite database, the generated key file and logs live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default a SQLite file in the data directory. "
        "postgresql://… selects PostgreSQL.",
    )

    # The queue's protections (the seed's numbers are the defaults).
    max_concurrent_jobs: int = Field(default=3, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    job_timeout_seconds: float = Field(default=600.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    retry_base_seconds: float = Field(default=5.0, ge=0)
    retry_max_seconds: float = Field(default=900.0, ge=0)
    priority_aging_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A waiting job gains one priority point per this many seconds.",
    )
    poll_interval_seconds: float = Field(
        default=0.5,
        gt=0,
        description="How often an idle worker looks for work when the database cannot wake it.",
    )
    max_period_days: int = Field(default=366, ge=1)
    shutdown_grace_seconds: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM a worker lets running jobs finish this long, then hands them back.",
    )

    # Per-account fairness and limits: one account cannot take every worker slot or flood
    # the queue or the API. The scheduler's and webhooks' refreshes are never refused (they
    # are bounded by stores × periods already); see storesync.queue.fairness.
    account_fairness_points: float = Field(
        default=10.0,
        ge=0,
        description="Claim order: a job gives up this many priority points for each job of its "
        "account already running or ahead of it, so accounts with less under way go first "
        "(10: ten minutes of aging at the default). 0 turns fairness off.",
    )
    max_running_jobs_per_account: int = Field(
        default=0,
        ge=0,
        description="Jobs of one account processing at once; the other slots stay free for "
        "other accounts' syncs, which then start at once whatever one account floods. "
        "0: no cap (every slot usable by any account).",
    )
    max_queued_jobs_per_account: int = Field(
        default=500,
        ge=0,
        description="Users' syncs (API, pages, CLI) an account may have queued or running at "
        "once; one more is refused (429). Scheduled and webhook refreshes do not count and are "
        "never refused. 0: no limit.",
    )
    api_requests_per_minute: int = Field(
        default=600,
        ge=0,
        description="API requests an account may make a minute (bursts up to that many), per "
        "server process; more are answered 429 with Retry-After. 0: no limit.",
    )
    max_stores_per_account: int = Field(
        default=1000, ge=0, description="Stores an account may have. 0: no limit."
    )

    # Syncs and the cache.
    sync_chunk_days: int = Field(
        default=31, ge=1, description="Long periods are fetched and checkpointed in chunks."
    )
    cache_ttl_seconds: float = Field(
        default=900.0, gt=0, description="How long figures of a recent period stay fresh."
    )
    attribution_window_days: int = Field(
        default=5,
        ge=0,
        description="Periods that ended more than this many days ago are final: no TTL.",
    )
    scheduler_interval_seconds: float = Field(
        default=30.0, gt=0, description="How often the scheduler looks for stale periods."
    )

    # Providers.
    shopify_base_url: str = "https://{shop}"
    shopify_api_version: str = "2025-10"
    shopify_api_secret: SecretStr | None = None
    shopify_bulk_threshold: int = Field(
        default=20_000,
        ge=0,
        description="Above this many orders in a period, use a bulk operation instead of paging.",
    )
    klaviyo_base_url: str = "https://a.klaviyo.com"
    klaviyo_revision: str = Field(
        default=SUPPORTED_KLAVIYO_REVISIONS[-1],
        description="The Klaviyo API revision sent with every request (one the code supports).",
    )
    klaviyo_daily_report_budget: int = Field(default=225, ge=0)
    klaviyo_reports_per_second: int = Field(
        default=1, ge=1, description="Klaviyo's burst limit on report calls, per account."
    )
    klaviyo_reports_per_minute: int = Field(
        default=2, ge=1, description="Klaviyo's steady limit on report calls, per account."
    )
    http_timeout_seconds: float = Field(default=30.0, gt=0)

    # Authentication, sessions and operational data (docs/deploy.md, "Security").
    auth_failure_limit: int = Field(
        default=10,
        ge=1,
        description="Failed sign-ins or unknown bearer tokens allowed per client address in "
        "the window; past it, 429 with Retry-After.",
    )
    auth_failure_window_seconds: float = Field(
        default=300.0, gt=0, description="The window of auth_failure_limit."
    )
    max_tokens_per_account: int = Field(
        default=100, ge=1, description="Active API tokens an account may create through the API."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="A bearer token that may read GET /metrics (for Prometheus); admin-scope "
        "API tokens may too, other tokens may not.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="The interface `storesync worker --metrics-port` binds."
    )

    # Request body limits (bytes), enforced as the body streams in, before a route parses it
    # or checks who sent it (storesync.api.limits); a larger body is answered 413.
    webhook_max_body_bytes: int = Field(
        # Shopify publishes no maximum for HTTPS webhook bodies: its staff say bodies can be
        # "upwards of a megabyte", and its EventBridge deliveries carry up to 1,000,000 bytes
        # before falling back to an id-only body. 10 MiB leaves ten times that headroom, so
        # that no real delivery is refused (Shopify would retry it, then drop the
        # subscription), while a forged upload is cut off early.
        default=10 * 1024 * 1024,
        ge=1024,
        description="Largest Shopify webhook body accepted (POST /webhooks/…).",
    )
    api_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body of the JSON API (/api/…)."
    )
    form_max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request body of the web pages (sign-in and the dashboard's forms).",
    )

    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for credentials at rest; generated into the data directory when unset.",
    )

    # Shop domains: only name.myshopify.com, unless hosts are allowed here on purpose (a
    # simulator serving shops under its own names). STORESYNC_SHOPIFY_BASE_URL pointing at a
    # simulator does not by itself allow other domains.
    shopify_allowed_hosts: str = Field(
        default="",
        description="Comma-separated extra shop host names (or *.suffix patterns) accepted "
        "besides name.myshopify.com; empty: Shopify domains only.",
    )

    @field_validator("shopify_allowed_hosts")
    @classmethod
    def _shop_hosts(cls, value: str) -> str:
        return ",".join(allowed_hosts(value))  # InputError is a ValueError: a settings error

    @property
    def shop_extra_hosts(self) -> tuple[str, ...]:
        """The hosts of ``STORESYNC_SHOPIFY_ALLOWED_HOSTS``, checked and lower-cased."""
        return allowed_hosts(self.shopify_allowed_hosts)

    @field_validator("shopify_base_url")
    @classmethod
    def _shop_placeholder(cls, value: str) -> str:
        if "{shop}" not in value:
            raise ValueError("STORESYNC_SHOPIFY_BASE_URL must contain the {shop} placeholder")
        return value.rstrip("/")

    @field_validator("klaviyo_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("klaviyo_revision")
    @classmethod
    def _supported_revision(cls, value: str) -> str:
        if value not in SUPPORTED_KLAVIYO_REVISIONS:
            raise ValueError(
                f"{value!r} is not a Klaviyo API revision storesync supports; use "
                f"{' or '.join(SUPPORTED_KLAVIYO_REVISIONS)} (see docs/providers.md)"
            )
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``storesync.db`` in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'storesync.db').resolve()}"

    @property
    def key_file(self) -> Path:
        """Where the generated credentials key lives when ``STORESYNC_SECRET_KEY`` is unset."""
        return self.data_dir / "secret.key"

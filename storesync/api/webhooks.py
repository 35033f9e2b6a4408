"""Shopify webhooks: verify, de-duplicate, mark the affected days stale, queue refreshes.

- **Authenticity.** ``X-Shopify-Hmac-Sha256`` must be the base64 HMAC-SHA256 of the raw body
  keyed with the app's client secret (``STORESYNC_SHOPIFY_API_SECRET``), compared in constant
  time. Anything else is refused before the body is even parsed. The signature covers the
  body only, not the headers: where the body names its shop (:func:`signed_shop_domain`),
  that is the shop, and an ``X-Shopify-Shop-Domain`` naming another is refused.
- **Once only.** Shopify retries a delivery for hours with the same ``X-Shopify-Webhook-Id``;
  the id is inserted into ``webhook_deliveries`` with ``ON CONFLICT DO NOTHING``, so of two
  concurrent deliveries exactly one proceeds, on either database. The SHA-256 of the raw body
  is recorded beside it, unique as well: a signed body sent again under a new id, or under
  another shop's domain header, is a duplicate too. (Shopify itself calls deliveries with
  identical payloads duplicates; real bodies carry the order's id and timestamps, so two
  different events never share one.) Ids longer than the column are refused, never cut:
  two ids that differ only past the cut would have collided.
- **What changed.** The figures count orders by the day they were created (in the store's
  time zone), so ``orders/create`` and ``orders/updated`` affect the order's ``created_at``
  day. A refund is counted on its order's day, which a ``refunds/create`` payload does not
  carry; its own days (``created_at``, ``processed_at``) are marked, and Shopify sends an
  ``orders/updated`` for the same refund, which marks the order's day.
- **What is refreshed.** Every cached period of the store containing an affected day is
  marked stale in the transaction that records the delivery (a later read refreshes it);
  the store's refresh periods (today, last 7 days, …) containing one are queued at webhook
  priority. Those jobs wait :data:`COALESCE_SECONDS` first, so that the burst of webhooks one
  order causes (created, paid, fulfilled) becomes one job per period, not one each: every
  refresh spends two of Klaviyo's 225 daily report calls. When the period's refresh is
  already running, it may have fetched past the change: it is told so
  (:meth:`~storesync.queue.JobQueue.note_change`) and its worker queues the period again.
- **Nothing half-done.** If queueing fails, the delivery record is removed again and the
  error answered with a 5xx, so Shopify's retry is processed rather than ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync.api.schemas import WebhookOutcome
from storesync.cache import mark_stale
from storesync.errors import InputError, NotFoundError
from storesync.periods import Period, named_period, today_in, zone
from storesync.queue import JobQueue, JobStatus, Reason
from storesync.storage.dialect import insert_ignoring_conflicts
from storesync.storage.engine import Database, is_transient_conflict
from storesync.storage.events import publish
from storesync.storage.models import Store, WebhookDelivery, table_of
from storesync.stores import normalize_domain

DELIVERIES = table_of(WebhookDelivery)
STORES = table_of(Store)

ORDER_TOPICS = frozenset({"orders/create", "orders/updated"})
REFUND_TOPICS = frozenset({"refunds/create"})
HANDLED_TOPICS = ORDER_TOPICS | REFUND_TOPICS
COALESCE_SECONDS = 10.0
#: Delivery ids are kept this long; Shopify stops retrying after about four hours.
KEEP_DELIVERIES = timedelta(days=7)
#: Runs of a delivery's transaction when a concurrent one deadlocks it (then a 500).
CONFLICT_ATTEMPTS = 3
#: The longest ``X-Shopify-Webhook-Id`` recorded (the column's size; Shopify's are UUIDs).
MAX_WEBHOOK_ID = 200


def signature_valid(secret: str, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` is the base64 HMAC-SHA256 of ``body`` under ``secret``."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


def sign(secret: str, body: bytes) -> str:
    """The header value Shopify would send for ``body`` (for tests and tools)."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _instants(topic: str, payload: dict[str, Any]) -> list[str]:
    if topic in ORDER_TOPICS:
        created = payload.get("created_at")
        if created:
            return [created]
        return [v for v in (payload.get("processed_at"), payload.get("updated_at")) if v]
    values = [payload.get("created_at"), payload.get("processed_at")]
    transactions = payload.get("transactions")
    for transaction in transactions if isinstance(transactions, list) else []:
        if isinstance(transaction, dict):
            values.append(transaction.get("processed_at") or transaction.get("created_at"))
    return [v for v in values if v]


def affected_days(topic: str, payload: dict[str, Any], tz: ZoneInfo) -> set[date]:
    """The store-local days whose figures the change in ``payload`` affects."""
    days = set()
    for value in _instants(topic, payload):
        try:
            instant = datetime.fromisoformat(str(value))
        except ValueError:
            continue
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        try:
            days.add(instant.astimezone(tz).date())
        except OverflowError:
            # Within a day of year 1 or 9999 the conversion leaves datetime's range. The day
            # as written is the best there is (and it is in no period anyone has cached).
            days.add(instant.date())
    return days


def signed_shop_domain(payload: dict[str, Any]) -> str | None:
    """The shop a signed body names itself, when it does (lowercase), else None.

    Shopify's signature covers the body, not ``X-Shopify-Shop-Domain``. Shop-level payloads
    carry ``myshopify_domain`` or ``shop_domain``; an order's ``order_status_url`` is on the
    shop's myshopify.com host unless the shop has a domain of its own (then it says nothing).
    """
    for key in ("myshopify_domain", "shop_domain"):
        value = payload.get(key)
        if isinstance(value, str):
            try:
                return normalize_domain(value)
            except InputError:
                return value.strip().lower()  # it names no shop we could match: a mismatch
    status_url = payload.get("order_status_url")
    if isinstance(status_url, str):
        try:
            host = urlsplit(status_url.strip()).hostname
        except ValueError:
            return None
        if host and host.endswith(".myshopify.com"):
            return host
    return None


class WebhookProcessor:
    """Turns a verified delivery into stale marks and queued refreshes."""

    def __init__(
        self,
        database: Database,
        queue: JobQueue,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.queue = queue
        self.clock = clock

    async def handle(
        self,
        *,
        webhook_id: str,
        topic: str,
        shop_domain: str,
        payload: dict[str, Any],
        body_sha256: str,
    ) -> WebhookOutcome:
        """Process one verified delivery (``body_sha256``: the hex SHA-256 of its raw body),
        or tell that it was seen before or concerns nothing storesync keeps."""
        if topic not in HANDLED_TOPICS:
            return WebhookOutcome(status="ignored")
        try:
            domain = normalize_domain(shop_domain)
        except InputError:
            return WebhookOutcome(status="ignored")
        now = self.clock()
        async with self.database.read() as conn:
            stores = (
                await conn.execute(
                    select(STORES.c.id, STORES.c.timezone, STORES.c.refresh_periods).where(
                        STORES.c.shopify_domain == domain
                    )
                )
            ).all()
        if not stores:
            return WebhookOutcome(status="ignored")
        plan = []
        for store in stores:
            tz = zone(store.timezone)
            days = sorted(affected_days(topic, payload, tz) or {today_in(tz, now)})
            plan.append((int(store.id), tz, days, list(store.refresh_periods or [])))

        stale: int | None = None
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                stale = await self._apply(webhook_id, body_sha256, domain, topic, plan, now)
                break
            except DBAPIError as exc:
                # A deadlock with a sync writing the same cache rows rolled everything back:
                # run it again rather than answer 500 (Shopify would retry it much later).
                if attempt == CONFLICT_ATTEMPTS or not is_transient_conflict(exc):
                    raise
        if stale is None:
            return WebhookOutcome(status="duplicate")
        try:
            queued = await self._refresh(plan, now)
        except BaseException:
            await self._forget(webhook_id)
            raise
        return WebhookOutcome(status="processed", stale_marked=stale, jobs_queued=queued)

    async def _apply(
        self,
        webhook_id: str,
        body_sha256: str,
        domain: str,
        topic: str,
        plan: list[tuple[int, ZoneInfo, list[date], list[str]]],
        now: datetime,
    ) -> int | None:
        """Record the delivery and mark its days stale, in one transaction: how many cached
        periods were marked, or None for a delivery seen before."""
        async with self.database.transaction() as conn:
            if not await self._record(conn, webhook_id, body_sha256, domain, topic, now):
                return None
            stale = 0
            for store_id, _tz, days, _periods in plan:
                stale += await mark_stale(conn, store_id, days)
                await publish(
                    conn,
                    {
                        "type": "cache.stale",
                        "store_id": store_id,
                        "days": [d.isoformat() for d in days],
                        "topic": topic,
                    },
                )
            return stale

    async def _record(
        self,
        conn: AsyncConnection,
        webhook_id: str,
        body_sha256: str,
        domain: str,
        topic: str,
        now: datetime,
    ) -> bool:
        """Insert the delivery; False when its id or its body was already there."""
        # No conflict target: a repeated id and a repeated body are both duplicates.
        inserted = await conn.scalar(
            insert_ignoring_conflicts(self.database.dialect, DELIVERIES)
            .values(
                webhook_id=webhook_id,
                body_sha256=body_sha256,
                shop_domain=domain,
                topic=topic,
                received_at=now,
            )
            .returning(DELIVERIES.c.webhook_id)
        )
        if inserted is None:
            return False
        await conn.execute(
            delete(DELIVERIES).where(DELIVERIES.c.received_at < now - KEEP_DELIVERIES)
        )
        return True

    async def _refresh(
        self, plan: list[tuple[int, ZoneInfo, list[date], list[str]]], now: datetime
    ) -> int:
        run_after = now + timedelta(seconds=COALESCE_SECONDS)
        queued = 0
        for store_id, tz, days, names in plan:
            today = today_in(tz, now)
            for name in names:
                period = named_period(name, today)
                inside = [d for d in days if period.start <= d <= period.end]
                if not inside:
                    continue
                try:
                    await self._queue_refresh(store_id, period, inside, run_after)
                except NotFoundError:
                    break  # the store was removed meanwhile: nothing left to refresh
                queued += 1
        return queued

    async def _queue_refresh(
        self, store_id: int, period: Period, days: list[date], run_after: datetime
    ) -> None:
        """Queue a refresh of ``period``, or have the one already running sync it again."""
        enqueued = await self.queue.enqueue(
            store_id, period.start, period.end, reason=Reason.WEBHOOK, run_after=run_after
        )
        if enqueued.job.status is not JobStatus.PROCESSING:
            return  # it has not fetched anything yet: it will see the change
        # A sync that is already fetching may have read past the change: it must not be
        # the last word on this period.
        changed = ", ".join(d.isoformat() for d in days)
        note = f"Shopify reported a change on {changed} while this sync ran; it runs again"
        if not await self.queue.note_change(enqueued.job.id, note):
            # It finished meanwhile, maybe without the change: queue a new refresh.
            await self.queue.enqueue(
                store_id, period.start, period.end, reason=Reason.WEBHOOK, run_after=run_after
            )

    async def _forget(self, webhook_id: str) -> None:
        async with self.database.transaction() as conn:
            await conn.execute(delete(DELIVERIES).where(DELIVERIES.c.webhook_id == webhook_id))

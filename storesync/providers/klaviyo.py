"""The Klaviyo connector: campaign and flow performance for a period, from the Reporting API.

A sync of one period makes, in order:

1. ``GET /api/accounts`` for the account id (cached by key fingerprint): the budget and the
   rate limits are per account;
2. a look at the account's report window, shared by every worker (:class:`ReportWindow`):
   when this minute's report calls are spent, the sync is deferred rather than kept waiting;
3. a reservation of two report calls in the account's daily budget (:class:`ReportBudget`),
   so a sync that cannot finish today is deferred before it starts;
4. ``GET /api/metrics`` for the "Placed Order" metric of the Shopify integration (cached per
   account in ``provider_cache``);
5. ``GET /api/campaigns`` (every channel) and ``GET /api/flows`` for names;
6. ONE ``POST /api/campaign-values-reports`` and ONE ``POST /api/flow-values-reports`` for the
   whole period (every page of a long answer is one more report call, reserved one at a
   time), with the period's exact bounds as the timeframe.

The results (one row per message) are summed per campaign and per flow as
:mod:`storesync.providers.figures` defines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from storesync.errors import PermanentError
from storesync.periods import Period
from storesync.providers.events import ProviderEvent, ProviderEvents, emit
from storesync.providers.figures import KlaviyoFigures, MessageStats, money
from storesync.providers.http import RetryPolicy
from storesync.providers.klaviyo_api import PROVIDER, KlaviyoAPI, account_cache_key
from storesync.providers.klaviyo_budget import ReportBudget
from storesync.providers.klaviyo_pacing import KlaviyoRateLimits, limiter_for
from storesync.providers.klaviyo_window import ReportWindow
from storesync.providers.provider_cache import KeyValueCache
from storesync.settings import Settings

STATISTICS = (
    "recipients",
    "delivered",
    "opens_unique",
    "open_rate",
    "clicks_unique",
    "click_rate",
    "conversions",
    "conversion_value",
    "unsubscribes",
)
#: The counts summed per campaign or flow (rates are recomputed from the sums).
COUNTS = ("recipients", "delivered", "opens_unique", "clicks_unique", "conversions", "unsubscribes")
#: Report calls a sync needs at least: one campaign report and one flow report.
REPORTS_PER_SYNC = 2
PLACED_ORDER = "Placed Order"


@dataclass(frozen=True, slots=True)
class _Report:
    """One values report: its endpoint, JSON:API type, grouping and owner id field."""

    path: str
    type: str
    group_by: tuple[str, ...]
    owner: str


CAMPAIGN_REPORT = _Report(
    "/api/campaign-values-reports",
    "campaign-values-report",
    ("campaign_id", "campaign_message_id", "send_channel"),
    "campaign_id",
)
FLOW_REPORT = _Report(
    "/api/flow-values-reports",
    "flow-values-report",
    ("flow_id", "flow_message_id", "send_channel"),
    "flow_id",
)


def timeframe(period: Period, tz: ZoneInfo) -> dict[str, str]:
    """The period's exact bounds as ISO instants with the store's UTC offsets."""
    start = datetime.combine(period.start, time.min, tzinfo=tz)
    end = datetime.combine(period.end + timedelta(days=1), time.min, tzinfo=tz)
    return {"start": start.isoformat(), "end": end.isoformat()}


class KlaviyoClient:
    """Reads one Klaviyo account's campaign and flow performance."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        private_key: str,
        budget: ReportBudget,
        cache: KeyValueCache,
        events: ProviderEvents | None = None,
        retry: RetryPolicy | None = None,
        limits: KlaviyoRateLimits | None = None,
    ) -> None:
        self.api = KlaviyoAPI(
            http, settings, private_key=private_key, events=events, retry=retry, limits=limits
        )
        self.budget = budget
        self.cache = cache
        self.events = events

    def __repr__(self) -> str:  # never show the key
        return f"KlaviyoClient({self.api.account_id or self.api.fingerprint!r})"

    @property
    def throttled(self) -> int:
        """429 answers this client has received (0 when pacing works)."""
        return self.api.throttled

    async def account_id(self) -> str:
        """The Klaviyo account the key belongs to (cached by the key's fingerprint)."""
        if self.api.account_id:
            return self.api.account_id
        key = account_cache_key(self.api.fingerprint)
        cached = await self.cache.get(key)
        if cached and cached.get("id"):
            account = str(cached["id"])
        else:
            document = await self.api.get("/api/accounts")
            accounts = document.get("data") or []
            if not accounts:
                raise PermanentError("Klaviyo returned no account for the key", provider=PROVIDER)
            account = str(accounts[0]["id"])
            await self.cache.put(key, {"id": account})
        self.api.account_id = account
        return account

    async def placed_order_metric(self) -> str:
        """The id of the Shopify integration's "Placed Order" metric (cached per account)."""
        account = await self.account_id()
        key = f"klaviyo:{account}:placed_order_metric"
        cached = await self.cache.get(key)
        if cached and cached.get("id"):
            return str(cached["id"])
        params = {"filter": "equals(integration.name,'Shopify')"}
        async for metric in self.api.paginate("/api/metrics", params):
            attributes = metric.get("attributes") or {}
            integration = (attributes.get("integration") or {}).get("name")
            if attributes.get("name") == PLACED_ORDER and integration in (None, "Shopify"):
                await self.cache.put(key, {"id": str(metric["id"])})
                return str(metric["id"])
        raise PermanentError(
            'the Klaviyo account has no "Placed Order" metric from Shopify: connect the '
            "Shopify integration in Klaviyo so that orders (and revenue) are attributed",
            provider=PROVIDER,
        )

    async def fetch_performance(self, period: Period, tz: ZoneInfo) -> KlaviyoFigures:
        """Campaign and flow figures for ``period`` (dates in ``tz``).

        Raises :class:`~storesync.errors.RetryableError` with ``retry_at``, before any report
        call, when the account's report calls for the minute are spent (``retry_at``: when
        they are not) or today's report budget cannot cover the sync (the next UTC midnight).
        """
        account = await self.account_id()
        window = ReportWindow(self.cache, limiter_for(account, "reports", self.api.limits), account)
        await window.wait_or_defer()
        calls = _ReportCalls(self.budget, account, self.events)
        await calls.reserve_upfront(REPORTS_PER_SYNC)
        try:
            metric = await self.placed_order_metric()
            names = await self._names()
            frame = timeframe(period, tz)
            campaigns = await self._report(CAMPAIGN_REPORT, frame, metric, names, calls)
            flows = await self._report(FLOW_REPORT, frame, metric, names, calls)
        finally:
            await calls.refund_unused()
            if calls.made:
                await window.publish()
        return KlaviyoFigures(campaigns=campaigns, flows=flows)

    async def _names(self) -> dict[str, str]:
        # Revision 2026-10-15 lists campaigns of every channel at once (a channel filter is
        # no longer accepted) and keeps a campaign's name in ``attributes.definition``.
        names: dict[str, str] = {}
        async for campaign in self.api.paginate("/api/campaigns", {"page[size]": "100"}):
            definition = (campaign.get("attributes") or {}).get("definition") or {}
            names[str(campaign["id"])] = str(definition.get("name"))
        async for flow in self.api.paginate("/api/flows", {"page[size]": "50"}):
            names[str(flow["id"])] = str((flow.get("attributes") or {}).get("name"))
        return names

    async def _report(
        self,
        report: _Report,
        frame: Mapping[str, str],
        metric: str,
        names: Mapping[str, str],
        calls: _ReportCalls,
    ) -> tuple[MessageStats, ...]:
        body = {
            "data": {
                "type": report.type,
                "attributes": {
                    "statistics": list(STATISTICS),
                    "timeframe": dict(frame),
                    "conversion_metric_id": metric,
                    "group_by": list(report.group_by),
                },
            }
        }
        totals: dict[str, _Totals] = {}
        target: str | None = report.path
        while target:
            document = await self.api.call("POST", target, body=body, before_attempt=calls.take)
            data = document.get("data") or {}
            for row in (data.get("attributes") or {}).get("results") or []:
                groupings = row.get("groupings") or {}
                owner = str(groupings[report.owner])
                totals.setdefault(owner, _Totals()).add(groupings, row.get("statistics") or {})
            target = (document.get("links") or {}).get("next")
        return tuple(
            totals[owner].stats(owner, names.get(owner, owner)) for owner in sorted(totals)
        )


class _Totals:
    """Sums of one campaign's or flow's message rows."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(COUNTS, 0)
        self.value = Decimal(0)
        self.channels: set[str] = set()

    def add(self, groupings: Mapping[str, Any], statistics: Mapping[str, Any]) -> None:
        for name in COUNTS:
            self.counts[name] += int(statistics.get(name) or 0)
        # Decimal(str()) keeps both exact JSON decimals and integers exact.
        self.value += Decimal(str(statistics.get("conversion_value") or 0))
        channel = groupings.get("send_channel")
        if channel:
            self.channels.add(str(channel))

    def stats(self, owner: str, name: str) -> MessageStats:
        channel = next(iter(self.channels)) if len(self.channels) == 1 else "mixed"
        if not self.channels:
            channel = "email"
        return MessageStats(
            id=owner,
            name=name,
            channel=channel,
            recipients=self.counts["recipients"],
            delivered=self.counts["delivered"],
            opens_unique=self.counts["opens_unique"],
            clicks_unique=self.counts["clicks_unique"],
            conversions=self.counts["conversions"],
            conversion_value=money(self.value),
            unsubscribes=self.counts["unsubscribes"],
        )


class _ReportCalls:
    """Report calls of one sync against the daily budget: prepaid first, then one at a time.

    Every HTTP attempt at a report endpoint takes one call, retries and later pages included,
    because Klaviyo counts each one; so the budget in the database is never below Klaviyo's.
    """

    def __init__(self, budget: ReportBudget, account: str, events: ProviderEvents | None) -> None:
        self.budget = budget
        self.account = account
        self.events = events
        self.prepaid = 0
        self.made = 0  # HTTP attempts at report endpoints
        self.day = budget.today()

    async def reserve_upfront(self, calls: int) -> None:
        self.day = self.budget.today()
        remaining = await self.budget.reserve(self.account, calls)
        self.prepaid = calls
        await emit(
            self.events,
            ProviderEvent(
                PROVIDER,
                "budget",
                f"reserved {calls} Klaviyo report calls ({remaining} left today)",
                {"reserved": calls, "remaining": remaining},
            ),
        )

    async def take(self) -> None:
        self.made += 1
        if self.prepaid > 0:
            self.prepaid -= 1
            return
        remaining = await self.budget.reserve(self.account, 1)
        await emit(
            self.events,
            ProviderEvent(
                PROVIDER,
                "budget",
                f"reserved 1 more Klaviyo report call ({remaining} left today)",
                {"reserved": 1, "remaining": remaining},
            ),
        )

    async def refund_unused(self) -> None:
        if self.prepaid > 0:
            await self.budget.refund(self.account, self.prepaid, day=self.day)
            self.prepaid = 0

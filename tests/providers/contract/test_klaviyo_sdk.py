"""Klaviyo's official SDK, pointed at the simulator over TCP, reads every answer storesync uses.

The SDK (the release of the pinned revision) sends its own requests, with its own revision
header, and deserializes each answer into the revision's response model: an answer the real
API would not give (a required field missing, a wrong type) fails here. Paging goes through
the SDK's own cursor handling.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from klaviyo_api import KlaviyoAPI
from openapi_client.models import (
    GetAccountResponseCollection,
    GetFlowResponseCollectionCompoundDocument,
    GetMetricResponseCollectionCompoundDocument,
    GetOmniCampaignResponseCollectionCompoundDocument,
    MetricAggregateQuery,
    PostCampaignValuesResponseDTO,
    PostFlowValuesResponseDTO,
    PostMetricAggregateResponse,
)

from storesync.periods import Period
from storesync.providers.klaviyo import CAMPAIGN_REPORT, FLOW_REPORT, STATISTICS, timeframe
from storesync.simulator.oracle import attributed_daily

from ..helpers import NY, STORES

STORE = next(s for s in STORES if s.shop_domain == NY)


@pytest.fixture
def sdk(tcp_simulator: str) -> KlaviyoAPI:
    httpx.post(f"{tcp_simulator}/_sim/reset", timeout=30).raise_for_status()
    httpx.post(
        f"{tcp_simulator}/_sim/config", json={"report_page_size": 7}, timeout=30
    ).raise_for_status()
    return KlaviyoAPI(STORE.klaviyo_private_key, max_retries=0, test_host=tcp_simulator)


def every_page(first: Any, fetch: Any) -> list[Any]:
    """The items of every page, following ``links.next`` through the SDK's ``page_cursor``
    (the cursor taken from the link here: the SDK does that itself for https links only)."""
    pages = [first]
    while pages[-1].links is not None and pages[-1].links.next:
        cursor = httpx.URL(pages[-1].links.next).params["page[cursor]"]
        pages.append(fetch(page_cursor=cursor))
    return [item for page in pages for item in page.data]


def test_accounts_and_metrics(sdk: KlaviyoAPI) -> None:
    accounts = sdk.Accounts.get_accounts()
    assert isinstance(accounts, GetAccountResponseCollection)
    account = accounts.data[0]
    assert account.id == STORE.klaviyo_account_id
    assert account.attributes.contact_information.street_address is not None
    metrics = sdk.Metrics.get_metrics(filter="equals(integration.name,'Shopify')")
    assert isinstance(metrics, GetMetricResponseCollectionCompoundDocument)
    names = {m.attributes.name for m in metrics.data}
    assert "Placed Order" in names


def test_campaigns_and_flows_over_every_page(sdk: KlaviyoAPI) -> None:
    first = sdk.Campaigns.get_campaigns(page_size=100)
    assert isinstance(first, GetOmniCampaignResponseCollectionCompoundDocument)
    campaigns = every_page(first, lambda **kw: sdk.Campaigns.get_campaigns(page_size=100, **kw))
    assert len(campaigns) == len({c.id for c in campaigns}) > 100  # two pages
    assert all(c.attributes.definition.name for c in campaigns)
    flows = sdk.Flows.get_flows(page_size=50)
    assert isinstance(flows, GetFlowResponseCollectionCompoundDocument)
    assert flows.data and all(f.attributes.name for f in flows.data)


@pytest.mark.parametrize("report", [CAMPAIGN_REPORT, FLOW_REPORT], ids=lambda r: r.type)
def test_values_reports_over_every_page(sdk: KlaviyoAPI, report: Any) -> None:
    metrics = sdk.Metrics.get_metrics(filter="equals(integration.name,'Shopify')")
    metric = next(m.id for m in metrics.data if m.attributes.name == "Placed Order")
    period = Period(date(2025, 6, 1), date(2025, 7, 31))
    body = {
        "data": {
            "type": report.type,
            "attributes": {
                "statistics": list(STATISTICS),
                "timeframe": timeframe(period, ZoneInfo(STORE.timezone)),
                "conversion_metric_id": metric,
                "group_by": list(report.group_by),
            },
        }
    }
    kind = "campaign" if report is CAMPAIGN_REPORT else "flow"
    query = getattr(sdk.Reporting, f"query_{kind}_values")
    raw = getattr(sdk.Reporting, f"query_{kind}_values_without_preload_content")
    model: Any = PostCampaignValuesResponseDTO if kind == "campaign" else PostFlowValuesResponseDTO
    assert isinstance(query(body), model)  # the SDK's own deserialization
    # The revision's response model documents links.self only, so the SDK drops links.next;
    # the pages are read raw here (each still deserialized by the model), following the
    # simulator's links.next through the page_cursor parameter the operation defines.
    rows: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        answer = raw(body, page_cursor=cursor)
        assert answer.status == 200
        document = json.loads(answer.data)
        rows.extend(model.from_dict(document).data.attributes.results)
        pages += 1
        following = document["links"].get("next")
        if not following:
            break
        cursor = httpx.URL(following).params["page_cursor"]
    assert pages > 1 and rows
    assert all(set(row.groupings) == set(report.group_by) for row in rows)
    assert all(set(row.statistics) == set(STATISTICS) for row in rows)


def test_metric_aggregates_by_message_per_day(sdk: KlaviyoAPI) -> None:
    """The SDK builds the query from its own model, sends it, reads every page into
    ``PostMetricAggregateResponse``; the revenue per message and day is the oracle's."""
    metrics = sdk.Metrics.get_metrics(filter="equals(integration.name,'Shopify')")
    metric = next(m.id for m in metrics.data if m.attributes.name == "Placed Order")
    period = Period(date(2025, 3, 6), date(2025, 3, 12))  # clocks go forward on 9 March
    query = MetricAggregateQuery.from_dict(
        {
            "data": {
                "type": "metric-aggregate",
                "attributes": {
                    "metric_id": metric,
                    "measurements": ["count", "sum_value"],
                    "interval": "day",
                    "by": ["$attributed_message"],
                    "filter": [
                        "greater-or-equal(datetime,2025-03-06T00:00:00)",
                        "less-than(datetime,2025-03-13T00:00:00)",
                    ],
                    "timezone": STORE.timezone,
                    "page_size": 4,
                },
            }
        }
    )
    assert query is not None
    got: dict[tuple[str, date], Decimal] = {}
    pages = 0
    while True:
        answer = sdk.Metrics.query_metric_aggregates(query)
        assert isinstance(answer, PostMetricAggregateResponse)  # the SDK's own deserialization
        pages += 1
        days = [moment.date() for moment in answer.data.attributes.dates]
        assert days == list(period.dates())
        for row in answer.data.attributes.data:
            for day, value in zip(days, row.measurements["sum_value"], strict=True):
                if row.dimensions != [""] and value:
                    got[row.dimensions[0], day] = Decimal(str(value))
        # The response model documents links.self only; the next cursor is read raw.
        raw = sdk.Metrics.query_metric_aggregates_without_preload_content(query)
        following = json.loads(raw.data)["links"].get("next")
        if not following:
            break
        query.data.attributes.page_cursor = httpx.URL(following).params["page_cursor"]
    assert pages > 1
    expected = {(t.message, t.day): t.revenue for t in attributed_daily(STORE, period)}
    assert got == expected and expected

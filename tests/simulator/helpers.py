"""Shared helpers: a fake clock and a minimal reference client for both simulated APIs.

The reference client is deliberately simple (it is not the connector): it pages through
orders with cursors, de-duplicates by id, filters by the exact half-open bounds and folds the
orders into figures, so tests can check that what the wire serves agrees with the oracle.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from storesync.periods import Period
from storesync.providers.figures import DailySales, KlaviyoFigures, MessageStats, ShopifyFigures
from storesync.simulator import SimStore

API = "2025-10"
REVISION = "2026-10-15"

ORDER_FIELDS = """
  id createdAt cancelledAt test
  currentTotalPriceSet { shopMoney { amount currencyCode } }
  subtotalPriceSet { shopMoney { amount } }
  totalDiscountsSet { shopMoney { amount } }
  totalRefundedSet { shopMoney { amount } }
  customer { id numberOfOrders }
  customerJourneySummary { customerOrderIndex }
"""
ORDERS_QUERY = (
    "query Orders($q: String!, $after: String, $first: Int!) {"
    " orders(first: $first, after: $after, query: $q, sortKey: CREATED_AT) {"
    f" edges {{ cursor node {{ {ORDER_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
)


class FakeClock:
    """A settable epoch clock for the simulator."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def shop_url(store: SimStore) -> str:
    return f"/shops/{store.shop_domain}/admin/api/{API}/graphql.json"


async def gql(
    client: httpx.AsyncClient,
    store: SimStore,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> httpx.Response:
    headers = {"X-Shopify-Access-Token": store.shopify_token if token is None else token}
    return await client.post(
        shop_url(store), json={"query": query, "variables": variables or {}}, headers=headers
    )


def klaviyo_headers(store: SimStore) -> dict[str, str]:
    return {
        "Authorization": f"Klaviyo-API-Key {store.klaviyo_private_key}",
        "revision": REVISION,
        "Accept": "application/vnd.api+json",
    }


def bounds_query(period: Period, tz: str) -> tuple[str, int, int]:
    start, end = period.utc_bounds(ZoneInfo(tz))
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    query = f"created_at:>='{start.strftime(fmt)}' AND created_at:<'{end.strftime(fmt)}'"
    return query, int(start.timestamp()), int(end.timestamp())


async def fetch_orders(
    client: httpx.AsyncClient, store: SimStore, query: str, first: int = 50
) -> list[dict[str, Any]]:
    """Every order node the query returns, page by page (duplicates kept)."""
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        variables = {"q": query, "after": after, "first": first}
        response = await gql(client, store, ORDERS_QUERY, variables)
        body = response.json()
        assert "errors" not in body, body
        page = body["data"]["orders"]
        nodes.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def _epoch(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def figures_from_orders(
    nodes: list[dict[str, Any]], period: Period, store: SimStore
) -> ShopifyFigures:
    """The SPEC's Shopify figures from raw order nodes (dedupe, exact bounds, exclusions)."""
    tz = ZoneInfo(store.timezone)
    start, end = (int(b.timestamp()) for b in period.utc_bounds(tz))
    unique = {n["id"]: n for n in nodes}
    daily: dict[date, list[Decimal]] = {d: [] for d in period.dates()}
    gross = discounts = refunds = Decimal("0.00")
    new: set[str] = set()
    seen: set[str] = set()
    from datetime import datetime

    for node in unique.values():
        created = _epoch(node["createdAt"])
        if not start <= created < end or node["test"] or node["cancelledAt"]:
            continue
        day = datetime.fromtimestamp(created, tz).date()
        daily[day].append(Decimal(node["currentTotalPriceSet"]["shopMoney"]["amount"]))
        discount = Decimal(node["totalDiscountsSet"]["shopMoney"]["amount"])
        gross += Decimal(node["subtotalPriceSet"]["shopMoney"]["amount"]) + discount
        discounts += discount
        refunds += Decimal(node["totalRefundedSet"]["shopMoney"]["amount"])
        if node["customer"]:
            index = node["customerJourneySummary"]["customerOrderIndex"]
            (new if index == 1 else seen).add(node["customer"]["id"])
    cent = Decimal("0.01")
    series = tuple(
        DailySales(d, len(v), sum(v, Decimal("0.00")).quantize(cent)) for d, v in daily.items()
    )
    return ShopifyFigures(
        currency=store.currency,
        orders=sum(s.orders for s in series),
        total_sales=sum((s.total_sales for s in series), Decimal("0.00")),
        gross_sales=gross.quantize(cent),
        discounts=discounts.quantize(cent),
        refunds=refunds.quantize(cent),
        new_customers=len(new),
        returning_customers=len(seen - new),
        daily=series,
    )


STATS = [
    "recipients", "delivered", "opens_unique", "open_rate", "clicks_unique", "click_rate",
    "conversions", "conversion_value", "unsubscribes",
]  # fmt: skip


def report_body(kind: str, period: Period, store: SimStore, metric: str) -> dict[str, Any]:
    start, end = period.utc_bounds(ZoneInfo(store.timezone))
    group_by = (
        ["campaign_id", "campaign_message_id", "send_channel"]
        if kind == "campaign"
        else ["flow_id", "flow_message_id", "send_channel"]
    )
    return {
        "data": {
            "type": f"{kind}-values-report",
            "attributes": {
                "statistics": STATS,
                "timeframe": {"start": start.isoformat(), "end": end.isoformat()},
                "conversion_metric_id": metric,
                "group_by": group_by,
            },
        }
    }


async def placed_order_metric(client: httpx.AsyncClient, store: SimStore) -> str:
    response = await client.get(
        "/api/metrics",
        params={"filter": "equals(integration.name,'Shopify')"},
        headers=klaviyo_headers(store),
    )
    return next(
        m["id"] for m in response.json()["data"] if m["attributes"]["name"] == "Placed Order"
    )


async def report_rows(
    client: httpx.AsyncClient, store: SimStore, kind: str, body: dict[str, Any]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    url: str | None = f"/api/{kind}-values-reports"
    while url:
        response = await client.post(url, json=body, headers=klaviyo_headers(store))
        assert response.status_code == 200, response.text
        payload = response.json()
        rows.extend(payload["data"]["attributes"]["results"])
        url = payload["links"]["next"]
    return rows


async def names(client: httpx.AsyncClient, store: SimStore) -> dict[str, str]:
    out: dict[str, str] = {}
    urls: list[tuple[str, dict[str, str]]] = [
        ("/api/campaigns", {"page[size]": "100"}),
        ("/api/flows", {}),
    ]
    for url, params in urls:
        next_url: str | None = url
        while next_url:
            response = await client.get(
                next_url, params=params if next_url == url else None, headers=klaviyo_headers(store)
            )
            payload = response.json()
            for item in payload["data"]:
                attributes = item["attributes"]
                # Campaigns keep their name in ``definition`` (revision 2026-10-15).
                out[item["id"]] = attributes.get("definition", attributes)["name"]
            next_url = payload["links"]["next"]
    return out


def figures_from_reports(
    campaign_rows: list[dict[str, Any]], flow_rows: list[dict[str, Any]], labels: dict[str, str]
) -> KlaviyoFigures:
    def fold(rows: list[dict[str, Any]], key: str) -> tuple[MessageStats, ...]:
        sums: dict[str, dict[str, Any]] = {}
        for row in rows:
            owner = row["groupings"][key]
            entry = sums.setdefault(owner, {"channels": set(), "value": Decimal("0.00")})
            entry["channels"].add(row["groupings"]["send_channel"])
            for stat in ("recipients", "delivered", "opens_unique", "clicks_unique",
                         "conversions", "unsubscribes"):  # fmt: skip
                entry[stat] = entry.get(stat, 0) + row["statistics"][stat]
            entry["value"] += Decimal(repr(row["statistics"]["conversion_value"]))
        out = []
        for owner in sorted(sums):
            e = sums[owner]
            channel = e["channels"].pop() if len(e["channels"]) == 1 else "mixed"
            out.append(
                MessageStats(
                    owner, labels[owner], channel, e["recipients"], e["delivered"],
                    e["opens_unique"], e["clicks_unique"], e["conversions"],
                    e["value"].quantize(Decimal("0.01")), e["unsubscribes"],
                )
            )  # fmt: skip
        return tuple(out)

    return KlaviyoFigures(fold(campaign_rows, "campaign_id"), fold(flow_rows, "flow_id"))

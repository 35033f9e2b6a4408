"""Query Metric Aggregates over the wire: figures against the oracle, refusals, paging, limits."""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storesync.periods import Period
from storesync.simulator import SimStore, Simulator
from storesync.simulator.audit import audit_limits
from storesync.simulator.oracle import attributed_daily

from .conftest import HISTORY_END
from .helpers import FakeClock, klaviyo_headers, placed_order_metric

PATH = "/api/metric-aggregates"
NY_TZ = "America/New_York"
# Clocks go back on 2 November 2025 in New York: that day has 25 hours.
AROUND_DST = Period(date(2025, 10, 28), date(2025, 11, 6))


def local_midnight(day: date, tz: str) -> str:
    return datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(tz)).isoformat()


def body(metric: str, period: Period, tz: str = NY_TZ, **attributes: Any) -> dict[str, Any]:
    """A query of ``period``'s local days in ``tz`` (bounds without an offset: in ``tz``)."""
    end = period.end + timedelta(days=1)
    query: dict[str, Any] = {
        "metric_id": metric,
        "measurements": ["count", "sum_value", "unique"],
        "interval": "day",
        "filter": [
            f"greater-or-equal(datetime,{period.start.isoformat()}T00:00:00)",
            f"less-than(datetime,{end.isoformat()}T00:00:00)",
        ],
        "timezone": tz,
    }
    query.update(attributes)
    return {"data": {"type": "metric-aggregate", "attributes": query}}


async def every_row(
    client: httpx.AsyncClient, store: SimStore, request: dict[str, Any]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The dates and the rows of every page, following the cursor in the body."""
    request = copy.deepcopy(request)
    rows: list[dict[str, Any]] = []
    while True:
        response = await client.post(PATH, json=request, headers=klaviyo_headers(store))
        assert response.status_code == 200, response.text
        document = response.json()
        rows.extend(document["data"]["attributes"]["data"])
        following = document["links"]["next"]
        if not following:
            return document["data"]["attributes"]["dates"], rows
        cursor = httpx.URL(following).params["page_cursor"]
        request["data"]["attributes"]["page_cursor"] = cursor


def per_day_sums(dates: list[str], rows: list[dict[str, Any]]) -> dict[date, Decimal]:
    """Attributed revenue per local day: every row but the unattributed one ("")."""
    totals: dict[date, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row["dimensions"] == [""]:
            continue
        for stamp, value in zip(dates, row["measurements"]["sum_value"], strict=True):
            totals[datetime.fromisoformat(stamp).date()] += Decimal(str(value))
    return dict(totals)


def oracle_per_day(store: SimStore | Any, period: Period) -> dict[date, Decimal]:
    totals: dict[date, Decimal] = defaultdict(Decimal)
    for item in attributed_daily(store, period):
        totals[item.day] += item.revenue
    return dict(totals)


async def test_by_message_matches_the_oracle_across_a_dst_change(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    metric = await placed_order_metric(client, ny)
    dates, rows = await every_row(
        client, ny, body(metric, AROUND_DST, by=["$attributed_message"], page_size=5)
    )
    assert dates == [local_midnight(d, NY_TZ) for d in AROUND_DST.dates()]
    assert dates[5].endswith("-04:00") and dates[6].endswith("-05:00")  # 1 and 2 November
    data = await sim.load(ny)
    truth = attributed_daily(data, AROUND_DST)
    expected = {(t.message, t.day): (t.conversions, t.revenue) for t in truth}
    got = {}
    for row in rows:
        (message,) = row["dimensions"]
        if message == "":
            continue
        m = row["measurements"]
        for n, day in enumerate(AROUND_DST.dates()):
            if m["count"][n]:
                got[message, day] = (m["count"][n], Decimal(str(m["sum_value"][n])))
            else:
                assert m["sum_value"][n] == 0
    assert got == expected and len(expected) > 10
    assert per_day_sums(dates, rows) == oracle_per_day(data, AROUND_DST)


async def test_by_flow_and_channel_and_totals_agree(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    metric = await placed_order_metric(client, ny)
    _, totals = await every_row(client, ny, body(metric, AROUND_DST))
    assert len(totals) == 1 and totals[0]["dimensions"] == []
    data = await sim.load(ny)
    orders_per_day = [
        sum(
            not data.is_test(i)
            for i in range(*data.created_range(data.midnight(d), data.midnight(d + timedelta(1))))
        )
        for d in AROUND_DST.dates()
    ]
    assert totals[0]["measurements"]["count"] == orders_per_day  # every order is an event
    profiles_per_day = [
        len(
            {
                data.orders.customer[i] or -1 - i  # a guest order is its own profile
                for i in range(
                    *data.created_range(data.midnight(d), data.midnight(d + timedelta(1)))
                )
                if not data.is_test(i)
            }
        )
        for d in AROUND_DST.dates()
    ]
    assert totals[0]["measurements"]["unique"] == profiles_per_day
    _, by_channel = await every_row(
        client, ny, body(metric, AROUND_DST, by=["$attributed_channel"])
    )
    assert {tuple(r["dimensions"]) for r in by_channel} == {("",), ("email",), ("sms",)}
    counts = [sum(r["measurements"]["count"][n] for r in by_channel) for n in range(10)]
    assert counts == orders_per_day
    _, by_flow = await every_row(client, ny, body(metric, AROUND_DST, by=["$attributed_flow"]))
    flow_ids = {f.id for f in data.klaviyo.flows}
    assert {r["dimensions"][0] for r in by_flow} - {""} <= flow_ids
    flow_revenue = sum(
        Decimal(str(v)) for r in by_flow if r["dimensions"] != [""]
        for v in r["measurements"]["sum_value"]
    )  # fmt: skip
    truth = attributed_daily(data, AROUND_DST)
    assert flow_revenue == sum(t.revenue for t in truth if t.kind == "flow") > 0


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=st.dates(date(2025, 7, 25), HISTORY_END - timedelta(days=1)),
    days=st.integers(1, 40),
    zone=st.sampled_from([NY_TZ, "Europe/Lisbon"]),
)
async def test_per_day_sums_equal_the_oracle(
    client: httpx.AsyncClient, sim: Simulator, first: date, days: int, zone: str
) -> None:
    store = sim.store("ny-shop.myshopify.com" if zone == NY_TZ else "lisbon-shop.myshopify.com")
    period = Period(first, min(first + timedelta(days=days - 1), HISTORY_END - timedelta(1)))
    metric = await placed_order_metric(client, store)
    request = body(metric, period, zone, by=["$attributed_message"], measurements=["sum_value"])
    dates, rows = await every_row(client, store, request)
    assert len(dates) == len(list(period.dates()))
    got = {day: value for day, value in per_day_sums(dates, rows).items() if value}
    assert got == {d: v for d, v in oracle_per_day(await sim.load(store), period).items() if v}


async def test_intervals_follow_the_time_zone(client: httpx.AsyncClient, ny: SimStore) -> None:
    metric = await placed_order_metric(client, ny)
    day = Period(date(2025, 11, 2), date(2025, 11, 2))
    hours, hourly = await every_row(client, ny, body(metric, day, interval="hour"))
    assert len(hours) == 25  # the day clocks go back
    assert hours[1] == "2025-11-02T01:00:00-04:00" and hours[2] == "2025-11-02T01:00:00-05:00"
    _, daily = await every_row(client, ny, body(metric, day))
    assert sum(hourly[0]["measurements"]["count"]) == daily[0]["measurements"]["count"][0]
    span = Period(date(2025, 9, 3), date(2025, 11, 4))
    weeks, _ = await every_row(client, ny, body(metric, span, interval="week"))
    assert weeks[0] == "2025-09-01T00:00:00-04:00" and weeks[-1] == "2025-11-03T00:00:00-05:00"
    months, by_month = await every_row(client, ny, body(metric, span, interval="month"))
    assert months == [
        "2025-09-01T00:00:00-04:00",
        "2025-10-01T00:00:00-04:00",
        "2025-11-01T00:00:00-04:00",
    ]
    _, by_day = await every_row(client, ny, body(metric, span))
    assert sum(by_month[0]["measurements"]["count"]) == sum(by_day[0]["measurements"]["count"])


async def test_filter_sort_and_other_metrics(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    metric = await placed_order_metric(client, ny)
    data = await sim.load(ny)
    flow = data.klaviyo.flows[1].id  # Abandoned Cart
    request = body(metric, AROUND_DST, by=["$attributed_flow", "$attributed_message"])
    request["data"]["attributes"]["filter"].append(f'equals($attributed_flow,"{flow}")')
    _, rows = await every_row(client, ny, request)
    assert rows and {r["dimensions"][0] for r in rows} == {flow}
    ranked = body(metric, AROUND_DST, by=["$attributed_message"], sort="-sum_value")
    _, ordered = await every_row(client, ny, ranked)
    totals = [sum(r["measurements"]["sum_value"]) for r in ordered]
    assert totals == sorted(totals, reverse=True)
    other = next(m.id for m in data.klaviyo.metrics if m.name == "Opened Email")
    _, none = await every_row(client, ny, body(other, AROUND_DST))
    assert none[0]["measurements"]["count"] == [0] * 10


def attrs(**changes: Any) -> dict[str, Any]:
    """A body whose attributes are changed (a ``None`` value removes the key)."""
    request = body("METRIC", AROUND_DST)
    for key, value in changes.items():
        if value is None:
            del request["data"]["attributes"][key]
        else:
            request["data"]["attributes"][key] = value
    return request


A = "/data/attributes"
BOUNDS = ["greater-or-equal(datetime,2025-10-01T00:00:00)", "less-than(datetime,2025-10-02)"]


@pytest.mark.parametrize(
    ("request_body", "pointer", "words"),
    [
        (attrs(extra=1), f"{A}/extra", "not a valid field"),
        ({**attrs(), "meta": {}}, "/meta", "not a valid field"),
        ({"data": {"type": "metric-aggregates", "attributes": {}}}, "/data/type", "type"),
        (attrs(metric_id=None), f"{A}/metric_id", "required"),
        (attrs(metric_id="nope"), f"{A}/metric_id", "does not exist"),
        (attrs(measurements=[]), f"{A}/measurements", "required"),
        (attrs(measurements=["revenue"]), f"{A}/measurements/0", "not a valid measurement"),
        (attrs(interval="year"), f"{A}/interval", "not a valid interval"),
        (attrs(by=["$campaign"]), f"{A}/by/0", "not a valid 'by'"),
        (attrs(by="$attributed_flow"), f"{A}/by", "list of strings"),
        (attrs(filter=None), f"{A}/filter", "required"),
        (attrs(filter=BOUNDS[:1]), f"{A}/filter", "greater-or-equal and less-than"),
        (attrs(filter=BOUNDS[1:]), f"{A}/filter", "greater-or-equal and less-than"),
        (
            attrs(filter=["greater-than(datetime,2025-10-01)", BOUNDS[1]]),
            f"{A}/filter/0",
            "not a valid operator",
        ),
        (attrs(filter=[BOUNDS[0], "less-than(datetime,soon)"]), f"{A}/filter/1", "ISO 8601"),
        (attrs(filter=[BOUNDS[0], "less-than(datetime,2025-09-01)"]), f"{A}/filter", "after"),
        (
            attrs(filter=["greater-or-equal(datetime,0001-01-01T00:00:00+14:00)", BOUNDS[1]]),
            f"{A}/filter/0",
            "out of range",
        ),
        (
            attrs(filter=["greater-or-equal(datetime,2024-01-01)", BOUNDS[1]]),
            f"{A}/filter",
            "1 year",
        ),
        (attrs(filter=[*BOUNDS, "equals(Subject,'x'"]), f"{A}/filter", "filter"),
        (attrs(filter=[*BOUNDS, "equals(order_id,'1')"]), f"{A}/filter", "order_id"),
        (attrs(timezone="Mars/Olympus"), f"{A}/timezone", "time zone"),
        (attrs(timezone="america/new_york"), f"{A}/timezone", "time zone"),
        (attrs(timezone="Europe/Kyiv"), f"{A}/timezone", "time zone"),
        (attrs(page_size=0), f"{A}/page_size", "between 1 and 500"),
        (attrs(page_size=501), f"{A}/page_size", "between 1 and 500"),
        (attrs(page_cursor="bogus!"), f"{A}/page_cursor", "cursor"),
        (attrs(sort="$attributed_flow"), f"{A}/sort", "not a valid sort"),
        (attrs(return_fields="count"), f"{A}/return_fields", "list of strings"),
    ],
)
async def test_bad_queries_are_refused(
    client: httpx.AsyncClient, ny: SimStore, request_body: dict[str, Any], pointer: str, words: str
) -> None:
    request_body = copy.deepcopy(request_body)
    attributes = request_body["data"].get("attributes") or {}
    if attributes.get("metric_id") == "METRIC":
        attributes["metric_id"] = await placed_order_metric(client, ny)
    response = await client.post(PATH, json=request_body, headers=klaviyo_headers(ny))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/vnd.api+json"
    (error,) = response.json()["errors"]
    assert error["code"] == "invalid" and error["status"] == 400 and error["title"]
    assert error["source"] == {"pointer": pointer}
    assert words in error["detail"], error["detail"]


async def test_bad_json_scope_and_query_parameter(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    broken = await client.post(PATH, content=b"{", headers=klaviyo_headers(ny))
    assert broken.status_code == 400
    unknown = await client.post(
        PATH, params={"page_cursor": "x"}, json=attrs(), headers=klaviyo_headers(ny)
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["source"] == {"parameter": "page_cursor"}
    sim.configure({"stores": {ny.shop_domain: {"klaviyo_scopes": ["campaigns:read"]}}})
    denied = await client.post(PATH, json=attrs(), headers=klaviyo_headers(ny))
    assert denied.status_code == 403 and "metrics:read" in denied.json()["errors"][0]["detail"]


async def test_burst_and_steady_limits_per_account(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore, lisbon: SimStore, clock: FakeClock
) -> None:
    sim.configure({"klaviyo_limits": {"aggregates": {"burst": 3, "steady": 60}}})
    metric = await placed_order_metric(client, ny)
    request = body(metric, Period(date(2025, 10, 1), date(2025, 10, 1)))
    clock.now = math.floor(clock.now / 60) * 60 + 1
    statuses = [
        (await client.post(PATH, json=request, headers=klaviyo_headers(ny))).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    # Another account has its own windows.
    lisbon_request = body(await placed_order_metric(client, lisbon), Period(date(2025, 10, 1),
                          date(2025, 10, 1)), "Europe/Lisbon")  # fmt: skip
    other = await client.post(PATH, json=lisbon_request, headers=klaviyo_headers(lisbon))
    assert other.status_code == 200
    sent = 3
    while sent < 60:
        clock.advance(1)
        for _ in range(min(3, 60 - sent)):
            ok = await client.post(PATH, json=request, headers=klaviyo_headers(ny))
            assert ok.status_code == 200
            sent += 1
    assert ok.headers["RateLimit-Limit"] == "60" and ok.headers["RateLimit-Remaining"] == "0"
    clock.advance(1)
    refused = await client.post(PATH, json=request, headers=klaviyo_headers(ny))
    assert refused.status_code == 429 and refused.json()["errors"][0]["code"] == "throttled"
    assert int(refused.headers["Retry-After"]) >= 1


async def test_the_limit_audit_replays_aggregates_calls(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore, clock: FakeClock
) -> None:
    """Four calls answered in one second break the 3/s burst the audit replays them against
    (before the group was named for the audit, it counted them as unlimited)."""
    metric = await placed_order_metric(client, ny)
    request = body(metric, Period(date(2025, 10, 1), date(2025, 10, 1)))
    clock.now = math.floor(clock.now) + 0.1
    for _ in range(4):
        assert (await client.post(PATH, json=request, headers=klaviyo_headers(ny))).is_success
    records = sim.requests.records(provider="klaviyo")
    assert audit_limits(records, sim.config).held  # the test's own limits are lifted
    limited = sim.config.patched({"klaviyo_limits": {"aggregates": {"burst": 3, "steady": 60}}})
    audit = audit_limits(records, limited)
    assert not audit.held
    assert any("aggregates" in line and "limit 3" in line for line in audit.over_limit)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.sampled_from(
        ["metric_id", "measurements", "interval", "by", "filter", "timezone", "page_size",
         "page_cursor", "sort", "return_fields"]
    ),
    value=JSON,
)  # fmt: skip
async def test_any_value_of_any_attribute_is_answered_or_refused(
    client: httpx.AsyncClient, ny: SimStore, key: str, value: Any
) -> None:
    request = body(ny.klaviyo_account_id, AROUND_DST)
    request["data"]["attributes"]["metric_id"] = (
        await client.get("/api/metrics", headers=klaviyo_headers(ny))
    ).json()["data"][0]["id"]
    request["data"]["attributes"][key] = value
    response = await client.post(PATH, json=request, headers=klaviyo_headers(ny))
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["errors"][0]["source"]["pointer"].startswith(f"{A}/{key}")

"""The oracle itself: wrong requests fail it, and the simulator's rules are the SDK's.

The first tests feed :func:`check_request` requests the revision does not define (an extra
body key, a filter on a field or with an operator the operation does not allow, a page size
out of bounds, an unknown parameter, another revision) and require a precise complaint, so
the contract test of the connector cannot pass by checking nothing. The others compare what
the simulator accepts (query parameters, report body keys, filter fields and operators) with
the SDK, so that the simulator cannot drift from the revision either.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from storesync.simulator import Simulator
from storesync.simulator.klaviyo import QUERY_PARAMETERS, REVISION
from storesync.simulator.klaviyo_aggregates import BODY_KEYS as AGGREGATE_KEYS
from storesync.simulator.klaviyo_aggregates import DIMENSIONS, INTERVALS, MEASUREMENTS
from storesync.simulator.klaviyo_reports import BODY_KEYS
from storesync.simulator.klaviyo_resources import (
    CAMPAIGN_OPERATORS,
    FLOW_OPERATORS,
    METRIC_OPERATORS,
)

from ..helpers import NY, STORES, sim_config
from .klaviyo_oracle import SDK_REVISION, check_request, filter_conditions, find

REPORT: dict[str, Any] = {
    "data": {
        "type": "campaign-values-report",
        "attributes": {
            "statistics": ["recipients", "conversion_value"],
            "timeframe": {"start": "2025-07-01T00:00:00-04:00", "end": "2025-08-01T00:00:00-04:00"},
            "conversion_metric_id": "RESQ6t",
            "group_by": ["campaign_id", "campaign_message_id", "send_channel"],
        },
    }
}
PATHS = {
    "accounts": ("GET", "/api/accounts"),
    "metrics": ("GET", "/api/metrics"),
    "campaigns": ("GET", "/api/campaigns"),
    "flows": ("GET", "/api/flows"),
    "campaign-values-reports": ("POST", "/api/campaign-values-reports"),
    "flow-values-reports": ("POST", "/api/flow-values-reports"),
    "metric-aggregates": ("POST", "/api/metric-aggregates"),
}
AGGREGATES: dict[str, Any] = {
    "data": {
        "type": "metric-aggregate",
        "attributes": {
            "metric_id": "RESQ6t",
            "measurements": ["count", "sum_value"],
            "interval": "day",
            "by": ["$attributed_message"],
            "filter": [
                "greater-or-equal(datetime,2025-07-01T00:00:00)",
                "less-than(datetime,2025-08-01T00:00:00)",
            ],
            "timezone": "America/New_York",
            "page_size": 500,
            "page_cursor": "b2Zmc2V0OjUwMA==",
        },
    }
}


def report(**attributes: Any) -> dict[str, Any]:
    body = copy.deepcopy(REPORT)
    body["data"]["attributes"].update(attributes)
    return body


def test_the_connectors_requests_pass() -> None:
    assert check_request("GET", "/api/accounts", revision=SDK_REVISION) == []
    metrics = "filter=equals(integration.name,'Shopify')"
    assert check_request("GET", "/api/metrics", metrics, revision=SDK_REVISION) == []
    campaigns = "page%5Bsize%5D=100&page%5Bcursor%5D=b2Zmc2V0OjEwMA%3D%3D"
    assert check_request("GET", "/api/campaigns/", campaigns, revision=SDK_REVISION) == []
    assert check_request("GET", "/api/flows", "page[size]=50", revision=SDK_REVISION) == []
    reports = "/api/campaign-values-reports"
    assert check_request("POST", reports, "page_cursor=x", revision=SDK_REVISION, body=REPORT) == []


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (report(extra=1), "body key /data/attributes/extra is not defined"),
        ({**REPORT, "meta": {}}, "body key /meta is not defined"),
        ({"data": {**REPORT["data"], "id": "x"}}, "body key /data/id is not defined"),
        (report(statistics=["revenue"]), "body /data/attributes/statistics"),
        (report(group_by=["campaign_id", "send_channel"]), "lacks 'campaign_message_id'"),
        (report(group_by=["flow_id"]), "body /data/attributes/group_by"),
        ({"data": {"type": "campaign-values-report"}}, "body /data/attributes: Field required"),
    ],
    ids=["extra-attribute", "extra-top", "extra-data", "statistic", "required", "group", "none"],
)
def test_a_wrong_report_body_fails(body: dict[str, Any], complaint: str) -> None:
    problems = check_request(
        "POST", "/api/campaign-values-reports", revision=SDK_REVISION, body=body
    )
    assert any(complaint in p for p in problems), problems


@pytest.mark.parametrize(
    ("path", "query", "complaint"),
    [
        # The channel filter revision 2025-10-15 required on campaigns; 2026-10-15 has none.
        ("/api/campaigns", "filter=equals(messages.channel,'email')", "'messages.channel' is not"),
        ("/api/campaigns", "filter=equals(name,'Spring')", "operator 'equals' is not allowed"),
        ("/api/campaigns", "filter=and(contains(name,'a'),equals(status,'Sent'))", "'status'"),
        ("/api/metrics", "filter=equals(owner,'x')", "filter on 'owner' is not allowed"),
        ("/api/flows", "filter=contains(trigger_type,'Metric')", "operator 'contains'"),
        ("/api/campaigns", "page[size]=101", "page[size]='101' is invalid"),
        ("/api/flows", "page[size]=51", "page[size]='51' is invalid"),
        ("/api/flows", "page[size]=0", "page[size]='0' is invalid"),
        ("/api/metrics", "page[size]=10", "'page[size]' is not defined"),
        ("/api/accounts", "page%5Bcursor%5D=x", "'page[cursor]' is not defined"),
        ("/api/campaign-values-reports", "page[cursor]=x", "'page[cursor]' is not defined"),
    ],
)
def test_a_wrong_query_fails(path: str, query: str, complaint: str) -> None:
    method = "POST" if path.endswith("reports") else "GET"
    body = REPORT if method == "POST" else None
    problems = check_request(method, path, query, revision=SDK_REVISION, body=body)
    assert any(complaint in p for p in problems), problems


def test_wrong_operation_or_revision_fails() -> None:
    assert (
        "no operation" in check_request("POST", "/api/campaigns-report", revision=SDK_REVISION)[0]
    )
    assert "no operation" in check_request("DELETE", "/api/accounts", revision=SDK_REVISION)[0]
    assert (
        "revision header '2025-10-15'"
        in check_request("GET", "/api/accounts", revision="2025-10-15")[0]
    )
    assert "revision header None" in check_request("GET", "/api/accounts", revision=None)[0]
    assert "takes no body" in check_request("GET", "/api/flows", revision=SDK_REVISION, body={})[0]


def test_filter_conditions_ignore_quoted_text() -> None:
    text = 'and(contains(name,\'a(b,c\'),any(id,["x","y"]),equals(archived,false))'
    assert filter_conditions(text) == [("contains", "name"), ("any", "id"), ("equals", "archived")]


@pytest.mark.parametrize("endpoint", sorted(QUERY_PARAMETERS))
def test_the_simulator_accepts_the_sdks_query_parameters(endpoint: str) -> None:
    operation = find(*PATHS[endpoint])
    assert operation is not None
    assert QUERY_PARAMETERS[endpoint] == set(operation.query)


@pytest.mark.parametrize(
    ("endpoint", "operators"),
    [("campaigns", CAMPAIGN_OPERATORS), ("flows", FLOW_OPERATORS), ("metrics", METRIC_OPERATORS)],
)
def test_the_simulator_filters_as_the_sdk_allows(
    endpoint: str, operators: dict[str, frozenset[str]]
) -> None:
    operation = find(*PATHS[endpoint])
    assert operation is not None
    assert {field: set(ops) for field, ops in operators.items()} == operation.allowed_filters()


@pytest.mark.parametrize("endpoint", ["campaign-values-reports", "flow-values-reports"])
def test_the_simulator_reads_the_sdks_report_body_keys(endpoint: str) -> None:
    operation = find(*PATHS[endpoint])
    assert operation is not None and operation.body is not None
    model = operation.body
    for pointer, keys in BODY_KEYS.items():
        if pointer:
            model = model.model_fields[pointer.rsplit("/", 1)[-1]].annotation  # type: ignore[assignment]
        assert set(keys) == set(model.model_fields), pointer


def aggregates(**attributes: Any) -> dict[str, Any]:
    body = copy.deepcopy(AGGREGATES)
    body["data"]["attributes"].update(attributes)
    return body


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (AGGREGATES, None),
        (aggregates(group_by=["$flow"]), "body key /data/attributes/group_by is not defined"),
        (aggregates(measurements=["revenue"]), "body /data/attributes/measurements"),
        (aggregates(interval="year"), "body /data/attributes/interval"),
        (aggregates(by=["$campaign"]), "body /data/attributes/by"),
        (aggregates(sort="revenue"), "body /data/attributes/sort"),
        (aggregates(filter="less-than(datetime,2025-08-01)"), "body /data/attributes/filter"),
    ],
    ids=["sample", "extra", "measurement", "interval", "by", "sort", "filter-not-a-list"],
)
def test_metric_aggregates_bodies(body: dict[str, Any], complaint: str | None) -> None:
    path = "/api/metric-aggregates"
    problems = check_request("POST", path, revision=SDK_REVISION, body=body)
    if complaint is None:
        assert problems == []
    else:
        assert any(complaint in p for p in problems), problems


def test_the_simulator_reads_the_sdks_metric_aggregate_body() -> None:
    operation = find(*PATHS["metric-aggregates"])
    assert operation is not None and operation.body is not None
    model = operation.body
    for pointer, keys in AGGREGATE_KEYS.items():
        if pointer:
            model = model.model_fields[pointer.rsplit("/", 1)[-1]].annotation  # type: ignore[assignment]
        assert set(keys) == set(model.model_fields), pointer
    # Every measurement, interval, dimension and sort the simulator takes, the revision takes,
    # and a name outside them the revision refuses too (so the lists are the revision's).
    attributes: Any = model
    base = AGGREGATES["data"]["attributes"]
    for name in DIMENSIONS:
        attributes.model_validate(base | {"by": [name], "sort": f"-{name}"})
    for name in MEASUREMENTS:
        attributes.model_validate(base | {"measurements": [name], "sort": name})
    for name in INTERVALS:
        attributes.model_validate(base | {"interval": name})
    for wrong in ({"by": ["$campaign"]}, {"measurements": ["sum"]}, {"interval": "year"}):
        with pytest.raises(ValidationError):
            attributes.model_validate(base | wrong)
    enum = re.search(r"one of \(([^)]*)\)", _refusal(attributes, {"by": ["?"]}))
    assert enum is not None
    assert set(re.findall(r"'([^']+)'", enum.group(1))) == DIMENSIONS


def _refusal(model: Any, change: dict[str, Any]) -> str:
    try:
        model.model_validate(AGGREGATES["data"]["attributes"] | change)
    except ValidationError as error:
        return str(error)
    raise AssertionError("accepted")


@pytest.mark.parametrize(
    "body",
    [
        AGGREGATES,
        aggregates(by=["$attributed_flow", "Subject"], interval="hour", sort="-count"),
        aggregates(group_by=["$flow"]),
        aggregates(measurements=["revenue"]),
        aggregates(interval="year"),
        aggregates(by=["$campaign"]),
        aggregates(sort="revenue"),
        aggregates(page_size="many"),
    ],
    ids=["sample", "hourly", "extra", "measurement", "interval", "by", "sort", "page-size"],
)
async def test_the_simulator_and_the_checker_agree_on_metric_aggregates(
    simulator: Simulator, body: dict[str, Any]
) -> None:
    """A body the revision defines is answered; one it does not is refused by both."""
    simulator.configure(sim_config().to_json())
    simulator.reset()
    store = next(s for s in STORES if s.shop_domain == NY)
    body = copy.deepcopy(body)
    body["data"]["attributes"]["metric_id"] = (
        await simulator.load(store)
    ).klaviyo.placed_order_metric
    headers = {
        "Authorization": f"Klaviyo-API-Key {store.klaviyo_private_key}",
        "revision": REVISION,
    }
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        answer = await client.post("/api/metric-aggregates", json=body, headers=headers)
    (record,) = simulator.requests.records(provider="klaviyo")
    problems = check_request(
        record.method, record.path, record.query, revision=record.revision, body=record.body
    )
    assert (answer.status_code == 200) == (problems == []), (answer.text, problems)

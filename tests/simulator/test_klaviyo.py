"""Klaviyo over the wire: auth, revision, filters, paging, reports and rate limits."""

from __future__ import annotations

import math
from datetime import date

import httpx

from storesync.periods import Period
from storesync.simulator import SimStore, Simulator

from .helpers import (
    FakeClock,
    figures_from_reports,
    klaviyo_headers,
    names,
    placed_order_metric,
    report_body,
    report_rows,
)


async def test_missing_or_wrong_key_is_401(client: httpx.AsyncClient, ny: SimStore) -> None:
    wrong = {"revision": "2025-10-15", "Authorization": "Klaviyo-API-Key pk_wrong"}
    for headers in ({"revision": "2025-10-15"}, wrong):
        response = await client.get("/api/accounts", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/vnd.api+json"
        error = response.json()["errors"][0]
        assert error["code"] == "not_authenticated" and error["status"] == 401
        assert error["detail"] == "Missing or invalid private key."


async def test_revision_header_is_required(client: httpx.AsyncClient, ny: SimStore) -> None:
    headers = klaviyo_headers(ny)
    del headers["revision"]
    response = await client.get("/api/accounts", headers=headers)
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "invalid"
    bad = await client.get("/api/accounts", headers=klaviyo_headers(ny) | {"revision": "latest"})
    assert bad.status_code == 400
    # A valid revision the simulator does not implement is refused, naming the one it does.
    older = await client.get(
        "/api/accounts", headers=klaviyo_headers(ny) | {"revision": "2025-10-15"}
    )
    assert older.status_code == 400
    assert "2026-10-15" in older.json()["errors"][0]["detail"]


async def test_missing_scope_is_403(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    sim.configure({"stores": {ny.shop_domain: {"klaviyo_scopes": ["accounts:read"]}}})
    response = await client.get("/api/flows", headers=klaviyo_headers(ny))
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "permission_denied"


async def test_accounts_returns_the_account(client: httpx.AsyncClient, ny: SimStore) -> None:
    response = await client.get("/api/accounts", headers=klaviyo_headers(ny))
    assert response.status_code == 200
    account = response.json()["data"][0]
    assert account["id"] == ny.klaviyo_account_id
    assert account["attributes"]["timezone"] == "America/New_York"


async def test_metrics_filter_by_integration(client: httpx.AsyncClient, ny: SimStore) -> None:
    everything = await client.get("/api/metrics", headers=klaviyo_headers(ny))
    shopify = await client.get(
        "/api/metrics",
        params={"filter": "equals(integration.name,'Shopify')"},
        headers=klaviyo_headers(ny),
    )
    assert len(shopify.json()["data"]) < len(everything.json()["data"])
    names_ = {m["attributes"]["name"] for m in shopify.json()["data"]}
    assert "Placed Order" in names_ and "Opened Email" not in names_
    assert shopify.json()["links"]["next"] is None
    bad = await client.get(
        "/api/metrics", params={"filter": "equals(owner,'x')"}, headers=klaviyo_headers(ny)
    )
    assert bad.status_code == 400


async def test_campaigns_of_every_channel_in_one_list(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    # Revision 2026-10-15 lists campaigns of every channel without a filter, and no longer
    # accepts the channel filter (nor a status one) that 2025-10-15 required.
    response = await client.get("/api/campaigns", headers=klaviyo_headers(ny))
    assert response.status_code == 200
    data = sim.data(ny.shop_domain).klaviyo
    channels = {c.channel for c in data.campaigns[:100]}
    assert channels == {"email", "sms"}
    assert len(response.json()["data"]) == min(100, len(data.campaigns))
    for old in ("equals(messages.channel,'email')", "equals(status,'Sent')"):
        refused = await client.get(
            "/api/campaigns", params={"filter": old}, headers=klaviyo_headers(ny)
        )
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["source"] == {"parameter": "filter"}
    wrong_operator = await client.get(
        "/api/campaigns", params={"filter": "equals(name,'x')"}, headers=klaviyo_headers(ny)
    )
    assert wrong_operator.status_code == 400  # `name` allows `contains` only
    first = data.campaigns[0]
    combined = await client.get(
        "/api/campaigns",
        params={
            "filter": f"and(contains(name,'{first.name}'),equals(archived,false))",
            "page[size]": "100",
        },
        headers=klaviyo_headers(ny),
    )
    assert combined.status_code == 200
    assert first.id in {c["id"] for c in combined.json()["data"]}
    assert {c["attributes"]["definition"]["name"] for c in combined.json()["data"]} <= {
        c.name for c in data.campaigns if first.name in c.name
    }


async def test_campaign_paging_and_page_size(client: httpx.AsyncClient, ny: SimStore) -> None:
    for size in ("0", "101", "x"):
        bad = await client.get(
            "/api/campaigns", params={"page[size]": size}, headers=klaviyo_headers(ny)
        )
        assert bad.status_code == 400
    seen: list[str] = []
    response = await client.get(
        "/api/campaigns", params={"page[size]": "7"}, headers=klaviyo_headers(ny)
    )
    while True:
        payload = response.json()
        assert len(payload["data"]) <= 7
        seen.extend(c["id"] for c in payload["data"])
        if payload["links"]["next"] is None:
            break
        assert "page%5Bcursor%5D=" in payload["links"]["next"]
        response = await client.get(payload["links"]["next"], headers=klaviyo_headers(ny))
    assert len(seen) == len(set(seen)) > 7
    item = payload["data"][-1] if payload["data"] else None
    assert item is None or set(item["attributes"]) >= {"created_at", "definition"}


async def test_flows_page_size_limit(client: httpx.AsyncClient, ny: SimStore) -> None:
    bad = await client.get("/api/flows", params={"page[size]": "51"}, headers=klaviyo_headers(ny))
    assert bad.status_code == 400
    flows = (await client.get("/api/flows", headers=klaviyo_headers(ny))).json()["data"]
    assert flows and set(flows[0]["attributes"]) >= {"name", "status", "trigger_type"}


async def test_report_validation(client: httpx.AsyncClient, ny: SimStore) -> None:
    metric = await placed_order_metric(client, ny)
    period = Period(date(2025, 10, 1), date(2025, 10, 31))
    body = report_body("campaign", period, ny, metric)
    body["data"]["attributes"]["statistics"] = ["recipients", "revenue"]
    response = await client.post(
        "/api/campaign-values-reports", json=body, headers=klaviyo_headers(ny)
    )
    error = response.json()["errors"][0]
    assert (
        response.status_code == 400
        and error["source"]["pointer"] == "/data/attributes/statistics/1"
    )
    long = report_body("campaign", Period(date(2024, 1, 1), date(2025, 6, 1)), ny, metric)
    assert (
        await client.post("/api/campaign-values-reports", json=long, headers=klaviyo_headers(ny))
    ).status_code == 400
    wrong_metric = report_body("flow", period, ny, "XXXXXX")
    assert (
        await client.post(
            "/api/flow-values-reports", json=wrong_metric, headers=klaviyo_headers(ny)
        )
    ).status_code == 400
    wrong_type = report_body("flow", period, ny, metric)
    assert (
        await client.post(
            "/api/campaign-values-reports", json=wrong_type, headers=klaviyo_headers(ny)
        )
    ).status_code == 400
    keyed = report_body("flow", period, ny, metric)
    keyed["data"]["attributes"]["timeframe"] = {"key": "last_30_days"}
    assert (
        await client.post("/api/flow-values-reports", json=keyed, headers=klaviyo_headers(ny))
    ).status_code == 200


async def test_reports_match_the_oracle(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    sim.configure({"report_page_size": 5})  # forces paging through links.next
    metric = await placed_order_metric(client, ny)
    labels = await names(client, ny)
    for period in (
        Period(date(2025, 10, 1), date(2025, 10, 31)),
        Period(date(2025, 11, 2), date(2025, 11, 2)),
    ):
        campaigns = await report_rows(
            client, ny, "campaign", report_body("campaign", period, ny, metric)
        )
        flows = await report_rows(client, ny, "flow", report_body("flow", period, ny, metric))
        row = campaigns[0]
        assert set(row["groupings"]) == {"campaign_id", "campaign_message_id", "send_channel"}
        assert isinstance(row["statistics"]["conversion_value"], float)
        assert 0 <= row["statistics"]["open_rate"] <= 1
        assert figures_from_reports(campaigns, flows, labels) == sim.klaviyo_truth(
            ny.shop_domain, period
        )


async def test_another_conversion_metric_has_no_conversions(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    metrics = (await client.get("/api/metrics", headers=klaviyo_headers(ny))).json()["data"]
    other = next(m["id"] for m in metrics if m["attributes"]["name"] == "Opened Email")
    period = Period(date(2025, 10, 1), date(2025, 10, 31))
    rows = await report_rows(client, ny, "campaign", report_body("campaign", period, ny, other))
    assert rows and all(r["statistics"]["conversions"] == 0 for r in rows)


async def test_steady_and_burst_limits(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore, clock: FakeClock
) -> None:
    sim.configure({"klaviyo_limits": {"flows": {"burst": 3, "steady": 5}}})
    clock.now = math.floor(clock.now / 60) * 60 + 10  # well inside a minute window
    statuses = []
    for _ in range(4):
        response = await client.get("/api/flows", headers=klaviyo_headers(ny))
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert response.headers["Retry-After"] == "1"
    assert response.json()["errors"][0]["code"] == "throttled"
    clock.advance(1)
    ok = await client.get("/api/flows", headers=klaviyo_headers(ny))
    assert ok.headers["RateLimit-Limit"] == "5" and ok.headers["RateLimit-Remaining"] == "1"
    assert ok.headers["RateLimit-Reset"] == "49"
    await client.get("/api/flows", headers=klaviyo_headers(ny))
    clock.advance(1)
    blocked = await client.get("/api/flows", headers=klaviyo_headers(ny))
    assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "48"
    records = sim.requests.records(provider="klaviyo", throttled=True)
    assert len(records) == 2 and records[0].account == ny.klaviyo_account_id


async def test_daily_report_budget(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore, clock: FakeClock
) -> None:
    sim.configure({"klaviyo_limits": {"reports": {"burst": None, "steady": None, "daily": 3}}})
    clock.now = math.floor(clock.now / 86_400) * 86_400 + 86_400 - 3_600.5  # 22:59:59.5 UTC
    metric = await placed_order_metric(client, ny)
    period = Period(date(2025, 10, 1), date(2025, 10, 2))
    campaign, flow = (
        report_body("campaign", period, ny, metric),
        report_body("flow", period, ny, metric),
    )
    codes = [
        (
            await client.post(
                "/api/campaign-values-reports", json=campaign, headers=klaviyo_headers(ny)
            )
        ).status_code,
        (
            await client.post("/api/flow-values-reports", json=flow, headers=klaviyo_headers(ny))
        ).status_code,
        (
            await client.post(
                "/api/campaign-values-reports", json=campaign, headers=klaviyo_headers(ny)
            )
        ).status_code,
    ]
    assert codes == [200, 200, 200]  # both report endpoints share one daily budget
    refused = await client.post("/api/flow-values-reports", json=flow, headers=klaviyo_headers(ny))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "3601"  # whole seconds until UTC midnight
    assert "Expected available in 3601 seconds" in refused.json()["errors"][0]["detail"]
    other_endpoints = await client.get("/api/flows", headers=klaviyo_headers(ny))
    assert other_endpoints.status_code == 200
    clock.advance(3601)
    assert (
        await client.post("/api/flow-values-reports", json=flow, headers=klaviyo_headers(ny))
    ).status_code == 200
    usage = (await client.get("/_sim/limits")).json()["klaviyo"][ny.klaviyo_account_id]["reports"]
    assert usage["daily"] == 1


async def test_budget_spent_by_another_integration(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    sim.configure({"klaviyo_limits": {"reports": {"burst": None, "steady": None, "daily": 225}}})
    spent = await client.post(
        f"/_sim/klaviyo/{ny.klaviyo_account_id}/spend", params={"group": "reports", "count": "225"}
    )
    assert spent.json()["daily"] == 225
    metric = await placed_order_metric(client, ny)
    body = report_body("flow", Period(date(2025, 10, 1), date(2025, 10, 2)), ny, metric)
    refused = await client.post("/api/flow-values-reports", json=body, headers=klaviyo_headers(ny))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 1
    bad = await client.post(f"/_sim/klaviyo/{ny.klaviyo_account_id}/spend", params={"group": "x"})
    assert bad.status_code == 400


async def test_unknown_query_parameters_and_body_keys_are_refused(
    client: httpx.AsyncClient, ny: SimStore
) -> None:
    # Klaviyo answers 400 rather than ignore what a revision does not define, so a request
    # that drifts from the revision fails against the simulator too.
    for path, params in (
        ("/api/campaigns", {"page[size]": "10", "page[limit]": "10"}),
        ("/api/metrics", {"page[size]": "10"}),
        ("/api/accounts", {"include": "owner"}),
    ):
        response = await client.get(path, params=params, headers=klaviyo_headers(ny))
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/vnd.api+json"
        [error] = response.json()["errors"]
        assert error["status"] == 400 and error["code"] == "invalid"
        assert error["title"] == "Invalid input." and error["id"]
        assert error["source"]["parameter"] in ("page[limit]", "page[size]", "include")
    metric = await placed_order_metric(client, ny)
    period = Period(date(2025, 10, 1), date(2025, 10, 31))
    body = report_body("campaign", period, ny, metric)
    body["data"]["attributes"]["sort"] = "recipients"
    response = await client.post(
        "/api/campaign-values-reports", json=body, headers=klaviyo_headers(ny)
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["code"] == "invalid" and error["source"] == {"pointer": "/data/attributes/sort"}
    for extra, pointer in (({"meta": {}}, "/meta"), ({"id": "x"}, "/data/id")):
        body = report_body("flow", period, ny, metric)
        if pointer == "/meta":
            body.update(extra)
        else:
            body["data"].update(extra)
        response = await client.post(
            "/api/flow-values-reports", json=body, headers=klaviyo_headers(ny)
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["source"] == {"pointer": pointer}
    body = report_body("flow", period, ny, metric)
    body["data"]["attributes"]["group_by"] = [
        "flow_id",
        "send_channel",
    ]  # flow_message_id: required
    response = await client.post("/api/flow-values-reports", json=body, headers=klaviyo_headers(ny))
    assert response.status_code == 400
    assert "flow_message_id" in response.json()["errors"][0]["detail"]
    wrong_page = await client.post(
        "/api/flow-values-reports",
        params={"page[cursor]": "x"},
        json=report_body("flow", period, ny, metric),
        headers=klaviyo_headers(ny),
    )
    assert wrong_page.status_code == 400  # reports page with page_cursor

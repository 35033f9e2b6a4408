"""Shopify webhooks: a valid one marks the affected days stale and queues refreshes; a bad
signature is a 401 that queues nothing; a repeated delivery is ignored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from storesync.api.webhooks import sign
from storesync.periods import Period
from tests.api.support import WEBHOOK_SECRET, Deployment

SHOP = "loja-lisboa.myshopify.com"  # Europe/Lisbon


def _post(
    client: httpx.Client,
    body: bytes,
    *,
    webhook_id: str,
    topic: str = "orders/create",
    signature: str | None = "valid",
    shop: str = SHOP,
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-API-Version": "2025-10",
    }
    if signature == "valid":
        headers["X-Shopify-Hmac-Sha256"] = sign(WEBHOOK_SECRET, body)
    elif signature is not None:
        headers["X-Shopify-Hmac-Sha256"] = signature
    return client.post("/webhooks/shopify", content=body, headers=headers)


def _jobs(deployment: Deployment) -> list[dict[str, Any]]:
    return deployment.query(
        "SELECT store_id, reason, priority, period_start, period_end, status FROM sync_queue "
        "ORDER BY id"
    )


def _stale(deployment: Deployment) -> list[tuple[str, bool]]:
    rows = deployment.query(
        "SELECT period_start, period_end, stale FROM store_sync_cache "
        "WHERE data_type = 'shopify' ORDER BY period_start"
    )
    return [(f"{r['period_start']}..{r['period_end']}", bool(r["stale"])) for r in rows]


def test_valid_bad_and_repeated_deliveries(deployment: Deployment) -> None:
    url = deployment.serve(worker=False)
    store = deployment.add_store(SHOP)
    lisbon = ZoneInfo("Europe/Lisbon")
    today = datetime.now(lisbon).date()
    this_week = Period(today - timedelta(days=6), today)
    older_week = Period(today - timedelta(days=20), today - timedelta(days=14))
    for period in (this_week, older_week):
        deployment.cache(store, period, age=timedelta(minutes=1), expires_in=timedelta(hours=1))
    created = datetime.now(UTC).astimezone(lisbon).isoformat(timespec="seconds")
    order = json.dumps({"id": 4501, "created_at": created, "total_price": "10.00"}).encode()

    with httpx.Client(base_url=url, timeout=10) as client:
        for signature in (None, "bm90IHRoZSBobWFj", sign("another-secret", order)):
            refused = _post(client, order, webhook_id="w-1", signature=signature)
            assert refused.status_code == 401, signature
            assert refused.json() == {
                "detail": "missing or invalid X-Shopify-Hmac-Sha256 signature"
            }
        assert _jobs(deployment) == []
        assert _stale(deployment) == [(str(older_week), False), (str(this_week), False)]
        assert deployment.query("SELECT * FROM webhook_deliveries") == []

        accepted = _post(client, order, webhook_id="w-1")
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"status": "processed", "stale_marked": 2, "jobs_queued": 3}
        assert _stale(deployment) == [(str(older_week), False), (str(this_week), True)]
        jobs = _jobs(deployment)
        refreshed = {(str(j["period_start"]), str(j["period_end"])) for j in jobs}
        assert refreshed == {
            (today.isoformat(), today.isoformat()),
            ((today - timedelta(days=6)).isoformat(), today.isoformat()),
            ((today - timedelta(days=29)).isoformat(), today.isoformat()),
        }
        assert {(j["reason"], j["priority"], j["status"]) for j in jobs} == {
            ("webhook", 50, "queued")
        }

        repeated = _post(client, order, webhook_id="w-1")
        assert repeated.json() == {"status": "duplicate", "stale_marked": 0, "jobs_queued": 0}
        assert len(_jobs(deployment)) == 3

        # An update of an older order: the periods containing its day are marked stale and
        # of the store's refresh periods only the last 30 days contain it (already queued).
        old_day = today - timedelta(days=17)
        update = json.dumps({"id": 77, "created_at": f"{old_day}T12:00:00+00:00"}).encode()
        answer = _post(client, update, webhook_id="w-2", topic="orders/updated")
        assert answer.json() == {"status": "processed", "stale_marked": 2, "jobs_queued": 1}
        assert _stale(deployment) == [(str(older_week), True), (str(this_week), True)]
        assert len(_jobs(deployment)) == 3

        # Topics storesync does not use, and shops it does not know, are acknowledged.
        other = _post(client, b"{}", webhook_id="w-3", topic="products/update")
        assert (other.status_code, other.json()["status"]) == (200, "ignored")
        stranger = _post(client, order, webhook_id="w-4", shop="nobody.myshopify.com")
        assert (stranger.status_code, stranger.json()["status"]) == (200, "ignored")
        garbage = _post(client, b"not json", webhook_id="w-5")
        assert garbage.status_code == 422
        assert len(_jobs(deployment)) == 3
    deliveries = deployment.query("SELECT webhook_id FROM webhook_deliveries ORDER BY webhook_id")
    assert [d["webhook_id"] for d in deliveries] == ["w-1", "w-2"]


async def test_concurrent_duplicates_are_processed_once(deployment: Deployment) -> None:
    import asyncio

    url = deployment.serve(worker=False)
    store = deployment.add_store(SHOP)
    today = datetime.now(ZoneInfo("Europe/Lisbon")).date()
    deployment.cache(store, Period(today, today), age=timedelta(0), expires_in=timedelta(hours=1))
    order = json.dumps({"id": 1, "created_at": datetime.now(UTC).isoformat()}).encode()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        headers = {
            "X-Shopify-Hmac-Sha256": sign(WEBHOOK_SECRET, order),
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Webhook-Id": "same-id",
        }
        answers = await asyncio.gather(
            *(client.post("/webhooks/shopify", content=order, headers=headers) for _ in range(6))
        )
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses == ["duplicate"] * 5 + ["processed"]

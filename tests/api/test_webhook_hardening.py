"""Signed webhooks that are odd, extreme or replayed: each gets a clean answer, none a 500,
and a signed body is processed once, whatever id or shop header it comes back under."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from storesync.api.webhooks import affected_days, sign, signed_shop_domain
from storesync.periods import Period
from tests.api.support import WEBHOOK_SECRET, Deployment

SHOP = "loja-lisboa.myshopify.com"  # Europe/Lisbon, account "default"
OTHER = "rio-moda.myshopify.com"  # America/Sao_Paulo, account "rival"
LISBON = ZoneInfo("Europe/Lisbon")


def deliver(
    client: httpx.Client,
    body: bytes,
    *,
    webhook_id: str,
    shop: str = SHOP,
    topic: str = "orders/create",
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Hmac-Sha256": sign(WEBHOOK_SECRET, body),
    }
    return client.post("/webhooks/shopify", content=body, headers=headers)


def jobs_of(deployment: Deployment, store: int) -> int:
    rows = deployment.query(f"SELECT count(*) AS n FROM sync_queue WHERE store_id = {store}")
    return int(rows[0]["n"])


def deliveries(deployment: Deployment) -> list[dict[str, Any]]:
    return deployment.query(
        "SELECT webhook_id, shop_domain, body_sha256 FROM webhook_deliveries ORDER BY webhook_id"
    )


def order(order_id: int, created: datetime | str, **extra: Any) -> bytes:
    stamp = created if isinstance(created, str) else created.isoformat(timespec="seconds")
    return json.dumps({"id": order_id, "created_at": stamp, **extra}).encode()


def test_unreadable_and_extreme_signed_bodies_get_clean_answers(deployment: Deployment) -> None:
    url = deployment.serve(worker=False)
    store = deployment.add_store(SHOP)
    today = datetime.now(LISBON).date()
    deployment.cache(store, Period(today, today), age=timedelta(0), expires_in=timedelta(hours=1))
    depth = 100_000
    nested = b'{"id": 1, "x": ' + b"[" * depth + b"]" * depth + b"}"
    with httpx.Client(base_url=url, timeout=30) as client:
        # Unreadable: a 422 and nothing recorded, so a readable retry would be processed.
        deep = deliver(client, nested, webhook_id="deep")
        assert deep.status_code == 422, deep.text
        assert deep.json() == {"detail": "the webhook body is JSON nested too deeply to read"}
        huge_number = b'{"id": ' + b"9" * 5000 + b', "created_at": "2025-01-01T00:00:00Z"}'
        assert deliver(client, huge_number, webhook_id="digits").status_code == 422
        assert deliveries(deployment) == []

        # Readable, with dates at the ends of the calendar: processed, 200, no retry wanted.
        # Converting them to the store's zone leaves datetime's range (OverflowError before).
        for n, stamp in enumerate(("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00")):
            answer = deliver(client, order(n, stamp), webhook_id=f"edge-{n}")
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"status": "processed", "stale_marked": 0, "jobs_queued": 0}
        refund = json.dumps(
            {"id": 9, "created_at": "9999-12-31T23:00:00-05:00", "transactions": 12}
        ).encode()
        answer = deliver(client, refund, webhook_id="refund", topic="refunds/create")
        assert answer.status_code == 200, answer.text
        assert jobs_of(deployment, store) == 0  # none of those days is in a refresh period

        # Unusable dates: the change is taken to be today's, so nothing is lost.
        undated = deliver(client, order(3, "the 5th of never"), webhook_id="undated")
        # Both of the day's cached rows (Shopify's and Klaviyo's) are marked.
        assert undated.json() == {"status": "processed", "stale_marked": 2, "jobs_queued": 3}
    assert [d["webhook_id"] for d in deliveries(deployment)] == [
        "edge-0",
        "edge-1",
        "refund",
        "undated",
    ]


def test_a_signed_body_is_processed_once_whatever_id_or_shop_it_comes_back_under(
    deployment: Deployment,
) -> None:
    url = deployment.serve(worker=False)
    mine = deployment.add_store(SHOP)
    theirs = deployment.add_store(OTHER, account="rival")
    now = datetime.now(UTC)
    body = order(4501, now.astimezone(LISBON))
    with httpx.Client(base_url=url, timeout=10) as client:
        first = deliver(client, body, webhook_id="w-1")
        assert first.json()["status"] == "processed"
        queued = jobs_of(deployment, mine)
        assert queued == 3
        # Replays of the same signed bytes: a new id, then another shop's domain header.
        again = deliver(client, body, webhook_id="w-2")
        elsewhere = deliver(client, body, webhook_id="w-3", shop=OTHER)
        assert again.json()["status"] == elsewhere.json()["status"] == "duplicate"
        assert (jobs_of(deployment, mine), jobs_of(deployment, theirs)) == (3, 0)
        # The other shop's own events are processed as ever.
        own = deliver(client, order(7001, now), webhook_id="w-4", shop=OTHER)
        assert own.json()["status"] == "processed"
        assert jobs_of(deployment, theirs) == 3

        # A body that names its shop is that shop's, whatever the header says.
        named = order(4502, now, order_status_url=f"https://{SHOP}/4501/orders/abc/authenticate")
        forged = deliver(client, named, webhook_id="w-5", shop=OTHER)
        assert forged.status_code == 401
        assert forged.json() == {
            "detail": "X-Shopify-Shop-Domain is not the shop the signed webhook body names"
        }
        assert deliver(client, named, webhook_id="w-5").json()["status"] == "processed"

        # Ids are never cut: 200 characters are kept whole, a longer one is refused, and two
        # ids alike in their first 200 characters are not taken for one another.
        long_id = "a" * 200
        assert deliver(client, order(1, now), webhook_id=long_id).json()["status"] == "processed"
        longer = deliver(client, order(2, now), webhook_id=long_id + "b")
        assert longer.status_code == 400
        assert longer.json() == {"detail": "X-Shopify-Webhook-Id is longer than 200 characters"}
    recorded = deliveries(deployment)
    assert [d["webhook_id"] for d in recorded] == ["a" * 200, "w-1", "w-4", "w-5"]
    assert [d["shop_domain"] for d in recorded] == [SHOP, SHOP, OTHER, SHOP]
    assert all(len(d["body_sha256"]) == 64 for d in recorded)


def test_days_at_the_ends_of_the_calendar_and_odd_transactions() -> None:
    far = {"created_at": "9999-12-31T23:59:59-12:00"}
    assert {d.isoformat() for d in affected_days("orders/create", far, LISBON)} == {"9999-12-31"}
    early = {"created_at": "0001-01-01T00:00:00+14:00"}
    assert {d.isoformat() for d in affected_days("orders/updated", early, LISBON)} == {"0001-01-01"}
    for transactions in (12, "2025-01-01", {"processed_at": "2025-01-01"}, None):
        refund = {"created_at": "2025-03-01T10:00:00Z", "transactions": transactions}
        days = affected_days("refunds/create", refund, LISBON)
        assert {d.isoformat() for d in days} == {"2025-03-01"}, transactions


def test_the_shop_a_body_names() -> None:
    assert signed_shop_domain({"myshopify_domain": "Acme.myshopify.com"}) == "acme.myshopify.com"
    assert signed_shop_domain({"shop_domain": "acme.myshopify.com"}) == "acme.myshopify.com"
    assert signed_shop_domain({"shop_domain": "not a shop"}) == "not a shop"
    status = "https://acme.myshopify.com/548380009/orders/123/authenticate?key=k"
    assert signed_shop_domain({"order_status_url": status}) == "acme.myshopify.com"
    # A shop with a domain of its own: the URL says nothing about which shop it is.
    custom = "https://shop.acme.example/548380009/orders/123/authenticate?key=k"
    assert signed_shop_domain({"order_status_url": custom}) is None
    assert signed_shop_domain({"order_status_url": "http://[broken"}) is None
    assert signed_shop_domain({"id": 1, "shop_domain": 7}) is None

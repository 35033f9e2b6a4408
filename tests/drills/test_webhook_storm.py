"""Drill: a storm of 500 Shopify webhook deliveries, with repeats and forged signatures.

The storm comes in two waves. Between them the shops' orders change, and the second wave,
which reports the change, arrives while the refreshes the first one queued are running, as a
busy shop's deliveries do. Each delivery id is processed once; a forged one changes nothing
(not even for an id a genuine delivery uses later); exactly the refresh periods a change
touched are refreshed, and each ends holding the shop's new figures: no change is lost to a
refresh that had already fetched when it arrived.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from storesync.api.webhooks import sign
from storesync.periods import named_period, today_in
from storesync.simulator import SimStore
from storesync.stores import STANDARD_PERIODS
from tests.drills.checks import assert_drill_invariants, assert_one_job_at_a_time
from tests.drills.support import (
    WEBHOOK_SECRET,
    Call,
    Key,
    all_finished,
    api_server,
    fleet,
    job_key,
    jobs,
    query,
    secrets_of,
    storm,
)
from tests.harness import SimulatorProcess, fast_stores, wait_for

pytestmark = pytest.mark.slow

DECOYS = 2  # stores that only ever receive forged deliveries
GENUINE = 200  # distinct delivery ids, each sent once or more
REPEATS = 150
FORGED = 150
DAYS_AGO = (0, 3, 12, 25, 45)  # the last one is in no refresh period: nothing to queue


@pytest.fixture
def sim_stores() -> list[SimStore]:
    return fast_stores(10, orders_per_day=4)


def delivery(webhook_id: str, shop: str, body: bytes, signature: str, topic: str) -> Call:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Hmac-Sha256": signature,
    }
    forged = signature != sign(WEBHOOK_SECRET, body)
    return Call(
        "POST",
        "/webhooks/shopify",
        {"content": body, "headers": headers},
        tag=(webhook_id, shop, forged),
    )


def order(n: int, day: date, tz: str) -> bytes:
    created = datetime.combine(day, time(12), tzinfo=ZoneInfo(tz))
    return json.dumps({"id": 5000 + n, "created_at": created.isoformat()}).encode()


def test_a_storm_of_500_webhook_deliveries_with_repeats_and_forgeries(
    env: dict[str, str],
    db_url: str,
    simulator: SimulatorProcess,
    store_ids: dict[str, int],
    tmp_path: Path,
) -> None:
    rng = random.Random(500)
    specs = {s.shop_domain: s for s in simulator.config.stores}
    shops = sorted(store_ids)
    targets, decoys = shops[DECOYS:], shops[:DECOYS]
    now = datetime.now(UTC)

    genuine, changed = [], {}  # changed: webhook id → (shop, the local day of its order)
    for n in range(GENUINE):
        shop = targets[n % len(targets)]
        tz = specs[shop].timezone
        day = today_in(ZoneInfo(tz), now) - timedelta(days=DAYS_AGO[n % len(DAYS_AGO)])
        body = order(n, day, tz)
        topic = ("orders/create", "orders/updated")[n % 2]
        genuine.append(delivery(f"drill-{n}", shop, body, sign(WEBHOOK_SECRET, body), topic))
        changed[f"drill-{n}"] = (shop, day)
    repeats = [rng.choice(genuine) for _ in range(REPEATS)]
    forged = []
    for n in range(FORGED):
        shop = (decoys + targets)[n % (len(decoys) + len(targets))]
        body = order(GENUINE + n, now.date(), specs[shop].timezone)
        webhook_id = f"drill-{n}" if n % 3 == 0 else f"forged-{n}"  # some take genuine ids
        signature = sign("not-the-app-secret", body) if n % 2 else "bm90IGEgc2lnbmF0dXJl"
        forged.append(delivery(webhook_id, shop, body, signature, "orders/create"))
    # Forgeries of genuine ids go first: they must not make the genuine delivery of their id
    # a "duplicate" later. Then two waves, the second while the first one's refreshes run.
    early = [c for c in forged if c.tag[0].startswith("drill-")]
    others = [c for c in forged if c not in early]
    wave_one = genuine[: GENUINE // 2] + others[: len(others) // 2]
    wave_two = genuine[GENUINE // 2 :] + repeats + others[len(others) // 2 :]
    rng.shuffle(wave_one)
    rng.shuffle(wave_two)
    assert len(early) + len(wave_one) + len(wave_two) == 500
    shop_of = {store: shop for shop, store in store_ids.items()}

    api_log = tmp_path / "api.log"
    with fleet(env, tmp_path) as workers, api_server(env, api_log) as url:
        simulator.post("/_sim/config", {"latency": {"fixed_ms": 150}})  # refreshes take a while
        answers = storm(url, early) + storm(url, wave_one)
        running = wait_for(
            lambda: fetched_but_running(db_url),
            timeout=60,
            interval=0.05,
            what="a refresh of the first wave between its Shopify and Klaviyo fetches",
        )
        # The shops' orders change (every day's, for simplicity), and wave two says so; the
        # news for the refresh caught mid-way goes first, so that it is still running.
        changed_orders = {shop: {"orders_per_day": 6} for shop in targets}
        simulator.post("/_sim/config", {"stores": changed_orders})
        wave_two.sort(key=lambda c: c.tag[0] not in news_for(running, changed, shop_of))
        answers += storm(url, wave_two)
        wait_for(lambda: all_finished(db_url), timeout=90, interval=0.5, what="every job")
        assert workers.stop() == [0, 0, 0, 0]

    # Each genuine id processed exactly once, every repeat a duplicate, every forgery refused.
    processed: dict[str, int] = defaultdict(int)
    for answer in answers:
        assert answer.response is not None
        webhook_id, shop, was_forged = answer.tag
        if was_forged:
            assert answer.response.status_code == 401, answer.response.text
            continue
        assert answer.response.status_code == 200, answer.response.text
        status = answer.response.json()["status"]
        assert status in ("processed", "duplicate")
        processed[webhook_id] += status == "processed"
    sent = {c.tag[0] for c in genuine}
    assert processed == dict.fromkeys(sent, 1)
    recorded = query(db_url, "SELECT * FROM webhook_deliveries")
    assert {r["webhook_id"] for r in recorded} == sent
    assert not {r["shop_domain"] for r in recorded} & set(decoys)

    # Exactly the refresh periods a genuine change touched were refreshed, by webhook jobs.
    touched: set[Key] = set()
    for shop, day in changed.values():
        today = today_in(ZoneInfo(specs[shop].timezone), now)
        periods = [named_period(name, today) for name in STANDARD_PERIODS]
        touched |= {(store_ids[shop], p.start, p.end) for p in periods if p.start <= day <= p.end}
    synced = jobs(db_url)
    assert {job_key(j) for j in synced} == touched
    assert {j["reason"] for j in synced} == {"webhook"}
    assert_one_job_at_a_time(db_url)
    assert_no_change_lost(db_url, simulator, shop_of, touched)
    noted = query(db_url, "SELECT count(*) AS n FROM sync_job_events WHERE kind = 'changed'")
    assert noted[0]["n"] > 0, "no change reached a running refresh: the drill proved nothing"

    assert_drill_invariants(
        db_url, simulator, touched, [*workers.logs, api_log], secrets_of(simulator, env)
    )


def fetched_but_running(db_url: str) -> dict[str, Any] | None:
    """A running job whose Shopify figures are fetched and Klaviyo's not yet, if any."""
    for job in jobs(db_url):
        progress = job["progress"] or {}
        if job["status"] == "processing" and progress.get("shopify_done"):
            if not progress.get("klaviyo_done"):
                return job
    return None


def news_for(
    job: dict[str, Any], changed: dict[str, tuple[str, date]], shop_of: dict[int, str]
) -> set[str]:
    """The ids of the deliveries that report a change to ``job``'s store and period."""
    return {
        webhook_id
        for webhook_id, (shop, day) in changed.items()
        if shop == shop_of[job["store_id"]] and job["period_start"] <= day <= job["period_end"]
    }


def assert_no_change_lost(
    db_url: str, simulator: SimulatorProcess, shop_of: dict[int, str], keys: Iterable[Key]
) -> None:
    """Every period a change touched holds the shop's figures as they are now."""
    cached = {
        job_key(r): r["payload"]
        for r in query(db_url, "SELECT * FROM store_sync_cache WHERE data_type = 'shopify'")
    }
    behind = []
    for key in keys:
        store, start, end = key
        truth = simulator.truth(shop_of[store], start.isoformat(), end.isoformat())["shopify"]
        figures = {name: cached[key][name] for name in ("orders", "total_sales")}
        if figures != {name: truth[name] for name in ("orders", "total_sales")}:
            behind.append((key, figures, truth["orders"]))
    assert behind == [], f"periods cached without the change: {behind}"

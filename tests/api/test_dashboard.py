"""The dashboard read: 202 → (a worker syncs) → 200, one job for concurrent requests,
stale-while-revalidate, ``force``, and bad input that writes nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx

from storesync.periods import Period
from tests.api.support import Deployment, bearer, old_period, recent_period

SHOP = "loja-lisboa.myshopify.com"


def _dates(period: Period) -> dict[str, str]:
    return {"start": period.start.isoformat(), "end": period.end.isoformat()}


def _wait_for_job(client: httpx.Client, location: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(location).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.2)
    raise TimeoutError(f"{location} did not finish in {timeout} s")


def test_missing_then_synced_by_the_worker_then_served(deployment: Deployment) -> None:
    url = deployment.serve(worker=True)
    store = deployment.add_store(SHOP)
    token = deployment.token("default")
    period = recent_period()
    with httpx.Client(base_url=url, headers=bearer(token), timeout=10) as client:
        path = f"/api/stores/{store}/dashboard"
        first = client.get(path, params=_dates(period))
        assert first.status_code == 202, first.text
        job = first.json()
        assert first.headers["location"] == f"/api/jobs/{job['id']}"
        assert (job["status"], job["reason"], job["priority"]) == ("queued", "user", 100)

        done = _wait_for_job(client, first.headers["location"])
        assert done["status"] == "completed", done
        assert done["progress"]["percent"] == 100
        kinds = [e["kind"] for e in done["events"]]
        assert kinds[:2] == ["queued", "claimed"] and kinds[-1] == "completed"

        served = client.get(path, params=_dates(period))
        assert served.status_code == 200, served.text
        document = served.json()
        assert document["meta"]["stale"] is False
        assert document["meta"]["refresh_job_id"] is None
        assert document["meta"]["synced_at"] == document["synced_at"] is not None
        truth = deployment.simulator.truth(SHOP, period)
        assert document["shopify"]["orders"] == truth["shopify"]["orders"]
        assert document["shopify"]["total_sales"] == truth["shopify"]["total_sales"]
        assert document["klaviyo"]["attributed_revenue"] == truth["klaviyo"]["attributed_revenue"]
        assert document["summary"]["orders"] == truth["shopify"]["orders"]
        # A fresh hit queues nothing more, nor does a sync of the fresh period: it answers
        # with the job that filled the cache. Only force syncs again.
        again = client.post(f"/api/stores/{store}/sync", json=_dates(period))
        assert again.status_code == 202
        assert (again.json()["id"], again.json()["status"]) == (job["id"], "completed")
        assert len(client.get("/api/jobs").json()["items"]) == 1
        forced = client.post(f"/api/stores/{store}/sync", json={**_dates(period), "force": True})
        assert forced.status_code == 202 and forced.json()["id"] != job["id"]


async def test_concurrent_requests_get_one_job(deployment: Deployment) -> None:
    url = deployment.serve(worker=False)
    store = deployment.add_store(SHOP)
    token = deployment.token("default")
    period = recent_period()
    async with httpx.AsyncClient(base_url=url, headers=bearer(token), timeout=10) as client:
        reads = [
            client.get(f"/api/stores/{store}/dashboard", params=_dates(period)) for _ in range(8)
        ]
        syncs = [client.post(f"/api/stores/{store}/sync", json=_dates(period)) for _ in range(4)]
        answers = await asyncio.gather(*reads, *syncs)
        assert {a.status_code for a in answers} == {202}
        assert len({a.json()["id"] for a in answers}) == 1
        assert len({a.headers["location"] for a in answers}) == 1
        listed = (await client.get("/api/jobs")).json()["items"]
        assert len(listed) == 1


def test_stale_while_revalidate_and_force(deployment: Deployment) -> None:
    url = deployment.serve(worker=False)
    store = deployment.add_store(SHOP)
    token = deployment.token("default")
    recent, final = recent_period(), old_period()
    deployment.cache(store, recent, age=timedelta(hours=1), expires_in=timedelta(minutes=15))
    deployment.cache(store, final, age=timedelta(days=30), expires_in=None)
    with httpx.Client(base_url=url, headers=bearer(token), timeout=10) as client:
        path = f"/api/stores/{store}/dashboard"

        fresh = client.get(path, params=_dates(final))
        assert fresh.status_code == 200
        assert fresh.json()["meta"] | {"synced_at": None} == {
            "synced_at": None,
            "stale": False,
            "final": True,
            "missing": [],
            "refresh_job_id": None,
        }
        assert client.get("/api/jobs").json()["items"] == []

        stale = client.get(path, params=_dates(recent))
        assert stale.status_code == 200
        body = stale.json()
        assert body["meta"]["stale"] is True
        assert body["shopify"]["orders"] == 3  # the cached figures, answered at once
        job = client.get(f"/api/jobs/{body['meta']['refresh_job_id']}").json()
        assert (job["status"], job["reason"], job["priority"]) == ("queued", "user", 100)
        assert (job["period_start"], job["period_end"]) == (
            recent.start.isoformat(),
            recent.end.isoformat(),
        )
        again = client.get(path, params=_dates(recent)).json()
        assert again["meta"]["refresh_job_id"] == job["id"]  # de-duplicated

        forced = client.get(path, params={**_dates(final), "force": "true"})
        assert forced.status_code == 202
        assert forced.json()["force"] is True
        assert forced.headers["location"] == f"/api/jobs/{forced.json()['id']}"
        assert len(client.get("/api/jobs").json()["items"]) == 2

        assert client.get("/metrics").status_code == 403  # a normal token: not the operator
        metrics = client.get("/metrics", headers=bearer(deployment.token("ops", scope="admin")))
        assert metrics.status_code == 200
        text = metrics.text
        for outcome in ("hit", "stale", "forced"):
            assert f'storesync_cache_reads_total{{outcome="{outcome}"}}' in text
        assert 'storesync_queue_depth{status="queued"} 2.0' in text


def test_bad_input_is_a_4xx_that_says_why_and_writes_nothing(deployment: Deployment) -> None:
    url = deployment.serve(worker=False)
    store = deployment.add_store(SHOP)
    token = deployment.token("default")
    with httpx.Client(base_url=url, headers=bearer(token), timeout=10) as client:
        path = f"/api/stores/{store}/dashboard"
        cases = [
            ({"start": "2025-13-01", "end": "2025-12-31"},
             "start '2025-13-01' is not a date in the form YYYY-MM-DD"),
            ({"start": "2025-02-01", "end": "2025-01-31"},
             "the period ends (2025-01-31) before it starts (2025-02-01)"),
            ({"start": "2024-01-01", "end": "2025-12-31"},
             "the period 2024-01-01..2025-12-31 is 731 days long; the maximum is 366"),
            ({"start": "0001-01-01", "end": "0001-01-02"},
             "start 0001-01-01 is out of range: use a date from 1970-01-01 to 9998-12-31"),
            ({"end": "2025-01-31"}, "query start: Field required"),
        ]  # fmt: skip
        for params, detail in cases:
            answer = client.get(path, params=params)
            assert (answer.status_code, answer.json()) == (422, {"detail": detail}), params
            answer = client.post(f"/api/stores/{store}/sync", json=params)
            assert answer.status_code == 422, params
        unknown = client.get("/api/stores/999999/dashboard", params=_dates(recent_period()))
        assert (unknown.status_code, unknown.json()) == (
            404,
            {"detail": "store 999999 does not exist"},
        )
        typo = client.get(path, params={**_dates(recent_period()), "forse": "true"})
        assert (typo.status_code, typo.json()) == (
            422,
            {"detail": "unknown query parameter 'forse'; this route takes end, force, start"},
        )
        flag = client.get(path, params={**_dates(recent_period()), "force": "maybe"})
        assert flag.status_code == 422
        assert flag.json()["detail"].startswith("query force:")

        new_store = {
            "name": "Mars shop",
            "shopify_domain": "mars.myshopify.com",
            "shopify_token": "shpat_mars",
            "timezone": "Mars/Olympus_Mons",
        }
        bad_zone = client.post("/api/stores", json=new_store)
        assert (bad_zone.status_code, bad_zone.json()) == (
            422,
            {"detail": "unknown time zone 'Mars/Olympus_Mons' (use an IANA name such as "
             "Europe/Lisbon)"},
        )  # fmt: skip
        bad_period = client.post(
            "/api/stores",
            json={**new_store, "timezone": "UTC", "refresh_periods": ["today", "fortnight"]},
        )
        assert bad_period.status_code == 422
        assert "unknown refresh period(s) fortnight" in bad_period.json()["detail"]
        update = client.patch(
            f"/api/stores/{store}", json={"name": "Renamed", "timezone": "Nowhere/City"}
        )
        assert update.status_code == 422
        assert client.post("/api/stores", content=b"{not json", headers={
            "content-type": "application/json"}).status_code == 422  # fmt: skip

        # Nothing was written by any of it.
        stores = client.get("/api/stores").json()["items"]
        assert [(s["id"], s["name"]) for s in stores] == [(store, "Loja Lisboa")]
        assert client.get("/api/jobs").json()["items"] == []


def test_a_failed_refresh_is_not_requeued_by_every_read(deployment: Deployment) -> None:
    url = deployment.serve(worker=True)
    revoked = "rio-moda.myshopify.com"  # the simulator answers 401 to its Shopify token
    store = deployment.add_store(revoked, klaviyo=False)
    token = deployment.token("default")
    period = recent_period()
    with httpx.Client(base_url=url, headers=bearer(token), timeout=10) as client:
        path = f"/api/stores/{store}/dashboard"
        first = client.get(path, params=_dates(period))
        assert first.status_code == 202
        failed = _wait_for_job(client, first.headers["location"])
        assert failed["status"] == "failed"
        assert failed["retry_count"] == 1  # permanent: no retries burnt
        assert "Shopify" in failed["error_message"]

        again = client.get(path, params=_dates(period))
        assert again.status_code == 202
        assert (again.json()["id"], again.json()["status"]) == (failed["id"], "failed")
        assert again.json()["error_message"] == failed["error_message"]
        assert len(client.get("/api/jobs").json()["items"]) == 1

        forced = client.get(path, params={**_dates(period), "force": "true"})
        assert forced.status_code == 202
        assert forced.json()["id"] != failed["id"]

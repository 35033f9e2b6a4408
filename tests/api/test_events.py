"""Live events: an SSE client hears a job completed by a worker in another process.

On PostgreSQL the worker is a separate ``storesync worker`` process and the server has none:
the event crosses processes through NOTIFY and the server's event relay. SQLite has no channel
between processes, so there the single-machine default is tested: the worker embedded in
``storesync serve``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api.support import Deployment, bearer, recent_period

SHOP = "loja-lisboa.myshopify.com"
#: The rival's store is another shop: two syncs of one shop would queue on its cost bucket.
OTHER_SHOP = "rio-moda.myshopify.com"


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event type, data) per SSE message; comments and ``retry:`` lines are skipped."""
    kind, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


async def test_sse_client_hears_the_completion_of_another_process(
    deployment: Deployment, backend: str
) -> None:
    separate_worker = backend == "postgresql"
    url = deployment.serve(worker=not separate_worker)
    if separate_worker:
        deployment.worker()
    mine = deployment.add_store(SHOP, account="agency")
    theirs = deployment.add_store(OTHER_SHOP, account="rival", klaviyo=False)
    token, rival = deployment.token("agency"), deployment.token("rival")
    period = recent_period()
    dates = {"start": period.start.isoformat(), "end": period.end.isoformat()}

    heard: list[tuple[str, dict[str, Any]]] = []
    async with (
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=120)) as client,
        client.stream("GET", "/api/events", headers=bearer(token)) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = _events(stream)
        assert await anext(events) == ("ready", {"account": "agency"})

        other = await client.post(f"/api/stores/{theirs}/sync", json=dates, headers=bearer(rival))
        assert other.status_code == 202
        queued = await client.post(f"/api/stores/{mine}/sync", json=dates, headers=bearer(token))
        assert queued.status_code == 202
        job_id = queued.json()["id"]

        async def until_completed() -> None:
            async for kind, data in events:
                heard.append((kind, data))
                if kind == "job.completed" and data["job_id"] == job_id:
                    return

        await asyncio.wait_for(until_completed(), timeout=120)

    mine_kinds = [k for k, d in heard if d.get("job_id") == job_id]
    assert mine_kinds[0] == "job.queued"
    assert "job.started" in mine_kinds and "cache.updated" in mine_kinds
    assert mine_kinds[-1] == "job.completed"
    completed = heard[-1][1]
    assert (completed["store_id"], completed["status"]) == (mine, "completed")
    # The rival account's job is not heard by this account's stream.
    assert all(d["store_id"] == mine for _k, d in heard)

    if separate_worker:
        jobs = deployment.query(f"SELECT worker_id FROM sync_queue WHERE id = {job_id}")
        assert jobs[0]["worker_id"] and ":" in jobs[0]["worker_id"]
        health = httpx.get(f"{url}/healthz").json()
        assert health["worker"] == "disabled"


# SQLite events never leave the process: there is no connection to lose.
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_streams_are_told_to_resync_after_the_database_connection_is_lost(
    deployment: Deployment,
) -> None:
    url = deployment.serve(worker=False)
    store = deployment.add_store(SHOP)
    token = deployment.token("default")
    async with (
        httpx.AsyncClient(base_url=url, headers=bearer(token), timeout=30) as client,
        client.stream("GET", "/api/events") as stream,
    ):
        events = _events(stream)
        assert (await anext(events))[0] == "ready"
        # Cut every connection the server holds, the LISTEN one included.
        deployment.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        kind, _data = await asyncio.wait_for(anext(events), timeout=20)
        assert kind == "resync"
        # The server carries on, and events flow again through the new connection.
        period = recent_period()
        dates = {"start": period.start.isoformat(), "end": period.end.isoformat()}
        queued = await client.post(f"/api/stores/{store}/sync", json=dates)
        assert queued.status_code == 202
        kind, data = await asyncio.wait_for(anext(events), timeout=20)
        assert (kind, data["job_id"]) == ("job.queued", queued.json()["id"])

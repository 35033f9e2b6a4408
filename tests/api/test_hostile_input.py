"""The API with periods no sync could compute and ids no database can hold (issue 18): a 422
that says why (the same check as the web pages, the CLI and the queue), nothing queued, never
a 500. In-process over HTTP (``httpx.ASGITransport``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from storesync.accounts import create_token
from storesync.app import create_app
from storesync.queue.transitions import JOBS
from storesync.serving.context import AppContext
from storesync.settings import Settings

RANGE = "use a date from 1970-01-01 to 9998-12-31"
REFUSED = [
    ({"start": "0001-01-01", "end": "0001-01-31"}, f"start 0001-01-01 is out of range: {RANGE}"),
    ({"start": "9999-12-01", "end": "9999-12-31"}, f"start 9999-12-01 is out of range: {RANGE}"),
    ({"start": "9998-12-01", "end": "9999-12-31"}, f"end 9999-12-31 is out of range: {RANGE}"),
    ({"start": "2025-01-01", "end": "2026-01-02"}, "is 367 days long; the maximum is 366"),
]


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, AppContext]]:
    settings = Settings(
        database_url=db_url,
        data_dir=tmp_path,
        secret_key="test-secret-key",  # type: ignore[arg-type]
    )
    app = create_app(settings, embedded_worker=False)
    async with app.router.lifespan_context(app):
        ctx: AppContext = app.state.context
        token = await create_token(ctx.database, "acme")
        transport = httpx.ASGITransport(app=app)  # a 500 would raise here
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=headers
        ) as client:
            yield client, ctx


async def _store(ctx: AppContext) -> int:
    store = await ctx.stores.add(
        name="Acme",
        shopify_domain="acme.myshopify.com",
        shopify_token="shpat_secret",
        klaviyo_key=None,
        timezone="Pacific/Kiritimati",
        account="acme",
    )
    return store.id


@pytest.mark.parametrize(("period", "message"), REFUSED)
async def test_a_refused_period_is_a_422_and_queues_nothing(
    api: tuple[httpx.AsyncClient, AppContext], period: dict[str, str], message: str
) -> None:
    client, ctx = api
    store_id = await _store(ctx)
    sync = await client.post(f"/api/stores/{store_id}/sync", json=period)
    assert sync.status_code == 422 and message in sync.json()["detail"]
    dashboard = await client.get(f"/api/stores/{store_id}/dashboard", params=period)
    assert dashboard.status_code == 422 and message in dashboard.json()["detail"]
    assert await ctx.queue.list_jobs() == []


async def test_the_extreme_accepted_periods_are_served(
    api: tuple[httpx.AsyncClient, AppContext],
) -> None:
    """The bounds themselves work end to end (UTC+14: the widest shift of a day's bounds)."""
    client, ctx = api
    store_id = await _store(ctx)
    for period in ({"start": "1970-01-01", "end": "1970-01-31"},
                   {"start": "9998-12-01", "end": "9998-12-31"}):  # fmt: skip
        assert (await client.get(f"/api/stores/{store_id}/dashboard", params=period)).is_success
        assert (await client.post(f"/api/stores/{store_id}/sync", json=period)).status_code == 202


async def test_ids_past_the_largest_bigint_are_refused(
    api: tuple[httpx.AsyncClient, AppContext],
) -> None:
    client, _ctx = api
    dates = {"start": "2026-01-01", "end": "2026-01-02"}
    for path, params in (
        ("/api/stores/{id}", None),
        ("/api/jobs/{id}", None),
        ("/api/stores/{id}/dashboard", dates),
    ):
        answer = await client.get(path.format(id=2**63), params=params)
        assert answer.status_code == 422, path
        assert "less than or equal to 9223372036854775807" in answer.json()["detail"]
    answer = await client.post(f"/api/stores/{2**63}/sync", json=dates)
    assert answer.status_code == 422


async def test_a_job_queued_before_periods_were_checked_cannot_be_retried(
    api: tuple[httpx.AsyncClient, AppContext],
) -> None:
    client, ctx = api
    store_id = await _store(ctx)
    job = (await ctx.queue.enqueue(store_id, date(2026, 3, 1), date(2026, 3, 7))).job
    await ctx.queue.cancel(job.id)
    async with ctx.database.transaction() as conn:
        await conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job.id)
            .values(period_start=date(9999, 12, 1), period_end=date(9999, 12, 31))
        )
    answer = await client.post(f"/api/jobs/{job.id}/retry")
    assert answer.status_code == 422
    assert answer.json() == {
        "detail": f"job {job.id} cannot be retried: start 9999-12-01 is out of range: {RANGE}"
    }

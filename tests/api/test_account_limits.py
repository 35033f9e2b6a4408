"""Per-account limits through the API and the pages (issue 18, item 3), on SQLite and
PostgreSQL: requests a minute, users' syncs queued at once and stores, each answered 429 with
``Retry-After`` and a sentence that names the limit, and never charged to another account."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from storesync.accounts import create_token
from storesync.app import create_app
from storesync.cache import KLAVIYO, SHOPIFY, write_rows
from storesync.errors import LimitExceededError
from storesync.periods import Period
from storesync.providers.figures import DailySales, KlaviyoFigures, ShopifyFigures
from storesync.serving.ratelimit import RequestRateLimiter
from storesync.settings import Settings
from storesync.storage import Database
from storesync.stores import StoreDirectory
from storesync.web.signin import create_sign_in_link
from tests.conftest import add_store


@asynccontextmanager
async def open_api(settings: Settings, **limits: int) -> AsyncIterator[httpx.AsyncClient]:
    """The app, in this process and without a worker, with ``limits`` changed."""
    app = create_app(settings.model_copy(update=limits), embedded_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def day(n: int) -> dict[str, str]:
    start = (date(2025, 1, 1) + timedelta(days=n)).isoformat()
    return {"start": start, "end": start}


def assert_limited(answer: httpx.Response, words: str) -> None:
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["retry-after"]) >= 1
    assert words in answer.json()["detail"]


async def test_requests_over_the_minutes_budget_get_429_with_retry_after(
    settings: Settings, database: Database
) -> None:
    mine, theirs = await create_token(database, "mine"), await create_token(database, "theirs")
    async with open_api(settings, api_requests_per_minute=5) as api:
        await requests_over_budget(api, mine, theirs)


async def requests_over_budget(api: httpx.AsyncClient, mine: str, theirs: str) -> None:
    for _ in range(5):
        assert (await api.get("/api/stores", headers=bearer(mine))).status_code == 200
    answer = await api.get("/api/stores", headers=bearer(mine))
    assert_limited(answer, "may make 5 API requests a minute")
    assert int(answer.headers["retry-after"]) <= 12  # one request back every 60 / 5 seconds
    # Routes about one store count too, and another account has its own budget.
    assert_limited(await api.get("/api/stores/1", headers=bearer(mine)), "API requests a minute")
    assert (await api.get("/api/stores", headers=bearer(theirs))).status_code == 200
    # An unknown token is still a 401, not a 429.
    assert (await api.get("/api/stores", headers=bearer("sst_nope"))).status_code == 401


async def test_syncs_over_the_accounts_cap_get_429_and_nothing_is_queued(
    settings: Settings, database: Database, stores: StoreDirectory
) -> None:
    token, other = await create_token(database, "default"), await create_token(database, "other")
    store = await add_store(stores, 1)
    theirs = await add_store(stores, 2, account="other")
    async with open_api(settings, max_queued_jobs_per_account=2) as api:
        await syncs_over_cap(api, token, other, store, theirs)


async def syncs_over_cap(
    api: httpx.AsyncClient, token: str, other: str, store: int, theirs: int
) -> None:
    for n in range(2):
        answer = await api.post(f"/api/stores/{store}/sync", json=day(n), headers=bearer(token))
        assert answer.status_code == 202
    again = await api.post(f"/api/stores/{store}/sync", json=day(0), headers=bearer(token))
    assert again.status_code == 202  # the same period: the job already queued, no new one
    answer = await api.post(f"/api/stores/{store}/sync", json=day(2), headers=bearer(token))
    assert_limited(answer, "already has 2 syncs queued or running")
    assert answer.headers["retry-after"] == "30"
    # A dashboard read that needs a job is refused the same way.
    read = await api.get(f"/api/stores/{store}/dashboard", params=day(3), headers=bearer(token))
    assert_limited(read, "STORESYNC_MAX_QUEUED_JOBS_PER_ACCOUNT")
    jobs = (await api.get("/api/jobs", headers=bearer(token))).json()["items"]
    assert len(jobs) == 2
    # Another account queues as usual.
    answer = await api.post(f"/api/stores/{theirs}/sync", json=day(0), headers=bearer(other))
    assert answer.status_code == 202


async def test_a_stale_dashboard_still_answers_at_the_cap(
    settings: Settings, database: Database, stores: StoreDirectory
) -> None:
    token = await create_token(database, "default")
    store = await add_store(stores, 1)
    stale = Period(date(2025, 3, 1), date(2025, 3, 1))
    figures = ShopifyFigures(
        currency="EUR",
        orders=1,
        total_sales=Decimal("10.00"),
        gross_sales=Decimal("10.00"),
        discounts=Decimal("0.00"),
        refunds=Decimal("0.00"),
        new_customers=1,
        returning_customers=0,
        daily=(DailySales(stale.start, 1, Decimal("10.00")),),
    )
    synced = datetime(2025, 3, 2, tzinfo=UTC)
    async with database.transaction() as conn:
        await write_rows(
            conn,
            database.dialect,
            store_id=store,
            period=stale,
            payloads={SHOPIFY: figures.to_json(), KLAVIYO: KlaviyoFigures().to_json()},
            synced_at=synced,
            expires=synced,  # expired long ago: stale
            job_id=None,
        )
    async with open_api(settings, max_queued_jobs_per_account=1) as api:
        await stale_at_cap(api, token, store)


async def stale_at_cap(api: httpx.AsyncClient, token: str, store: int) -> None:
    queued = await api.post(f"/api/stores/{store}/sync", json=day(0), headers=bearer(token))
    assert queued.status_code == 202
    params = {"start": "2025-03-01", "end": "2025-03-01"}
    read = await api.get(f"/api/stores/{store}/dashboard", params=params, headers=bearer(token))
    assert read.status_code == 200
    assert read.json()["meta"]["stale"] is True
    assert read.json()["meta"]["refresh_job_id"] is None


async def test_a_store_over_the_accounts_limit_gets_429(
    settings: Settings, database: Database
) -> None:
    token, other = await create_token(database, "default"), await create_token(database, "other")
    async with open_api(settings, max_stores_per_account=1) as api:
        await stores_over_limit(api, token, other)


async def stores_over_limit(api: httpx.AsyncClient, token: str, other: str) -> None:

    def store(n: int) -> dict[str, str]:
        return {
            "name": f"Store {n}",
            "shopify_domain": f"store-{n}.myshopify.com",
            "shopify_token": "shpat_x",
            "timezone": "UTC",
        }

    assert (await api.post("/api/stores", json=store(1), headers=bearer(token))).status_code == 201
    answer = await api.post("/api/stores", json=store(2), headers=bearer(token))
    assert_limited(answer, "already has 1 stores")
    listed = (await api.get("/api/stores", headers=bearer(token))).json()["items"]
    assert [s["name"] for s in listed] == ["Store 1"]
    assert (await api.post("/api/stores", json=store(3), headers=bearer(other))).status_code == 201


async def test_the_limits_are_documented_in_the_openapi_schema(settings: Settings) -> None:
    async with open_api(settings) as api:
        schema = (await api.get("/openapi.json")).json()
    sync = schema["paths"]["/api/stores/{store_id}/sync"]["post"]["responses"]
    assert "Retry-After" in sync["429"]["headers"]


def test_the_budget_refills_at_the_steady_rate() -> None:
    now = [0.0]
    limiter = RequestRateLimiter(2, clock=lambda: now[0])
    limiter.take(1)
    limiter.take(1)
    with pytest.raises(LimitExceededError) as refused:
        limiter.take(1)
    assert refused.value.retry_after == 30  # two a minute: one back every 30 s
    limiter.take(2)  # another account's budget is its own
    now[0] += 30
    limiter.take(1)
    with pytest.raises(LimitExceededError):
        limiter.take(1)
    now[0] += 3600  # a long pause refills the bucket to the burst, no more
    limiter.take(1)
    limiter.take(1)
    with pytest.raises(LimitExceededError):
        limiter.take(1)


async def test_the_dashboard_page_says_when_the_account_is_at_its_cap(
    settings: Settings, database: Database, stores: StoreDirectory
) -> None:
    token = await create_token(database, "default")
    store = await add_store(stores, 1)
    link = await create_sign_in_link(database, token)
    async with open_api(settings, max_queued_jobs_per_account=1) as web:
        assert (await web.get(f"/sign-in/once/{link}")).status_code == 303
        page = (await web.get(f"/stores/{store}")).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None

        def form(n: int) -> dict[str, str]:
            return {"period": "custom", **day(n), "csrf": csrf.group(1)}

        wanted = {"Accept": "application/json"}
        first = await web.post(f"/stores/{store}/sync", data=form(0), headers=wanted)
        assert first.status_code == 202
        # The page's script shows the detail of a refused sync.
        refused = await web.post(f"/stores/{store}/sync", data=form(1), headers=wanted)
        assert refused.status_code == 429
        assert "already has 1 syncs queued or running" in refused.json()["detail"]
        # A plain form post comes back to the page, which says why nothing was queued.
        plain = await web.post(f"/stores/{store}/sync", data=form(1))
        assert plain.status_code == 303
        shown = await web.get(plain.headers["location"])
        assert "Not queued: this account already has its maximum of syncs" in shown.text

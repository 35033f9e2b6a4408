"""The web pages and forms with ids past 2^63-1 and periods no sync could compute (issue 18):
the normal error page with a 404, or the page saying what is wrong with a 422; never a 500,
and nothing queued. Driven in-process over HTTP (``httpx.ASGITransport``), signed in through
the sign-in form, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
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

TOO_BIG = 2**63
YEAR_ONE = {"period": "custom", "start": "0001-01-01", "end": "0001-01-31"}
YEAR_9999 = {"period": "custom", "start": "9999-12-01", "end": "9999-12-31"}
JSON = {"Accept": "application/json"}


@dataclass
class Browser:
    client: httpx.AsyncClient
    ctx: AppContext
    csrf: str
    store_id: int

    def form(self, **fields: str) -> dict[str, str]:
        return {"csrf": self.csrf, **fields}


@pytest.fixture
async def browser(db_url: str, tmp_path: Path) -> AsyncIterator[Browser]:
    settings = Settings(
        database_url=db_url,
        data_dir=tmp_path,
        secret_key="test-secret-key",  # type: ignore[arg-type]
    )
    app = create_app(settings, embedded_worker=False)
    async with app.router.lifespan_context(app):
        ctx: AppContext = app.state.context
        token = await create_token(ctx.database, "acme")
        store = await ctx.stores.add(
            name="Acme",
            shopify_domain="acme.myshopify.com",
            shopify_token="shpat_secret",
            klaviyo_key=None,
            timezone="Europe/Lisbon",
            account="acme",
        )
        transport = httpx.ASGITransport(app=app)  # a 500 would raise here
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            sign_in = await client.get("/sign-in")
            csrf = re.search(r'name="csrf" value="([^"]+)"', sign_in.text)
            assert csrf is not None
            signed = await client.post(
                "/sign-in", data={"token": token, "csrf": csrf[1], "next": "/stores"}
            )
            assert signed.status_code == 303
            page = await client.get("/stores")
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
            assert csrf is not None
            yield Browser(client, ctx, csrf[1], store.id)


PAGES = [
    ("/stores/{id}", "Store {id} does not exist."),
    ("/stores/{id}/settings", "Store {id} does not exist."),
    ("/jobs/{id}", "Job {id} does not exist."),
]
FORMS = [
    ("/stores/{id}/sync", "Store {id} does not exist."),
    ("/jobs/{id}/retry", "Job {id} does not exist."),
    ("/jobs/{id}/cancel", "Job {id} does not exist."),
]
FRAGMENTS = [
    ("/web/stores/{id}/figures", "store {id} does not exist"),
    ("/web/jobs/{id}", "job {id} does not exist"),
]


@pytest.mark.parametrize("bad_id", [TOO_BIG, 10**30, -TOO_BIG - 1])
async def test_an_id_no_database_can_hold_is_the_not_found_page(
    browser: Browser, bad_id: int
) -> None:
    for path, message in PAGES:
        answer = await browser.client.get(path.format(id=bad_id))
        assert answer.status_code == 404, path
        assert "<h1>Not found</h1>" in answer.text
        assert message.format(id=bad_id) in answer.text
    for path, message in FORMS:
        url = path.format(id=bad_id)
        answer = await browser.client.post(url, data=browser.form())
        assert answer.status_code == 404, path
        assert message.format(id=bad_id) in answer.text
        answer = await browser.client.post(url, data=browser.form(), headers=JSON)
        assert (answer.status_code, answer.json()) == (404, {"detail": message.format(id=bad_id)})
    for path, message in FRAGMENTS:
        answer = await browser.client.get(path.format(id=bad_id))
        assert (answer.status_code, answer.json()) == (404, {"detail": message.format(id=bad_id)})
    settings = await browser.client.post(
        f"/stores/{bad_id}/settings", data=browser.form(name="x"), headers=JSON
    )
    assert settings.status_code == 404
    jobs = await browser.client.get("/jobs", params={"store": str(bad_id)})
    assert jobs.status_code == 422 and f"store {bad_id} does not exist" in jobs.text


@pytest.mark.parametrize(
    ("period", "message"),
    [
        (YEAR_ONE, "start 0001-01-01 is out of range: use a date from 1970-01-01 to 9998-12-31"),
        (YEAR_9999, "start 9999-12-01 is out of range: use a date from 1970-01-01 to 9998-12-31"),
        (
            {"period": "custom", "start": "9998-12-01", "end": "9999-12-31"},
            "end 9999-12-31 is out of range: use a date from 1970-01-01 to 9998-12-31",
        ),
    ],
)
async def test_a_period_no_sync_can_compute_is_refused_on_every_page(
    browser: Browser, period: dict[str, str], message: str
) -> None:
    dashboard = await browser.client.get(f"/stores/{browser.store_id}", params=period)
    assert dashboard.status_code == 422
    assert f"{message}; showing the last 7 days instead." in dashboard.text
    figures = await browser.client.get(f"/web/stores/{browser.store_id}/figures", params=period)
    assert (figures.status_code, figures.json()) == (422, {"detail": message})
    jobs = await browser.client.get("/jobs", params=period)
    assert jobs.status_code == 422 and message in jobs.text

    # The Sync button's form: the script gets the reason; a plain form goes back to the
    # dashboard of that period, which says what is wrong with it.
    url = f"/stores/{browser.store_id}/sync"
    refused = await browser.client.post(url, data=browser.form(**period), headers=JSON)
    assert (refused.status_code, refused.json()) == (422, {"detail": message})
    plain = await browser.client.post(url, data=browser.form(**period))
    assert plain.status_code == 303
    back = await browser.client.get(plain.headers["location"])
    assert back.status_code == 422 and message in back.text
    assert await browser.ctx.queue.list_jobs() == []


async def test_a_job_queued_before_periods_were_checked_cannot_be_retried(
    browser: Browser,
) -> None:
    queue = browser.ctx.queue
    job = (await queue.enqueue(browser.store_id, date(2026, 3, 1), date(2026, 3, 7))).job
    await queue.cancel(job.id)
    async with browser.ctx.database.transaction() as conn:
        await conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job.id)
            .values(period_start=date(1, 1, 1), period_end=date(1, 1, 2))
        )
    answer = await browser.client.post(f"/jobs/{job.id}/retry", data=browser.form(), headers=JSON)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(f"job {job.id} cannot be retried: start 0001-01-01")
    page = await browser.client.get(f"/jobs/{job.id}")  # the job's page still renders
    assert page.status_code == 200

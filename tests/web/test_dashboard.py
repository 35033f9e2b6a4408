"""The dashboard in a real browser against ``storesync serve`` (embedded worker, SQLite).

Sign in, open a store, press Sync: the queue panel shows the job and its progress, the KPI
cards then equal the simulator's truth, formatted in the store's currency. The store whose
Shopify token was revoked says so in the dashboard and in the queue panel, and its job can be
retried from the panel. A spent Klaviyo budget shows as a deferral until a time of day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from storesync.periods import named_period
from storesync.providers.klaviyo_budget import ReportBudget
from storesync.storage import Database
from tests.web.conftest import Site, sign_in
from tests.web.support import PROGRESS_RECORDER, money

ACME = "acme-outdoors.myshopify.com"
LISBOA = "loja-lisboa.myshopify.com"
RIO = "rio-moda.myshopify.com"
REJECTED = "the Shopify access token was rejected: update it in the store's settings"


@pytest.fixture
def page(context: BrowserContext, site: Site) -> Page:
    context.add_init_script(PROGRESS_RECORDER)
    opened = context.new_page()
    sign_in(opened, site.url, site.token)
    return opened


def kpi(page: Page, key: str) -> str:
    return page.locator(f'[data-kpi="{key}"] .value').inner_text().strip()


def today_in(zone: str) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()


def test_sync_shows_progress_then_the_true_figures_in_dollars(page: Page, site: Site) -> None:
    page.get_by_role("main").get_by_role("link", name="Acme Outdoors").click()
    page.get_by_label("Period").select_option("last_month")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#figures")).to_contain_text("Nothing is cached for this period yet")

    page.get_by_role("button", name="Sync").click()
    store_id = site.stores[ACME]
    running = page.locator(
        f'#queue-panel [data-job-state="processing"][data-store-id="{store_id}"]'
    )
    expect(running).to_be_visible()
    expect(page.locator('#figures [data-notice="syncing"]')).to_be_visible()
    expect(page.locator('#figures [data-notice="fresh"]')).to_be_visible(timeout=60_000)

    seen: list[dict[str, Any]] = page.evaluate("window.__progress")
    steps = {entry["value"] for entry in seen if entry["store"] == store_id}
    assert any(0 < value < 100 for value in steps), f"no progress shown between 0 and 100: {seen}"
    expect(running).to_have_count(0)

    period = named_period("last_month", today_in("America/New_York"))
    truth = site.deployment.simulator.truth(ACME, period.start.isoformat(), period.end.isoformat())
    shopify, klaviyo = truth["shopify"], truth["klaviyo"]
    assert kpi(page, "total_sales") == money(shopify["total_sales"], "$")
    assert kpi(page, "orders") == f"{shopify['orders']:,}"
    assert kpi(page, "aov") == money(shopify["aov"], "$")
    assert kpi(page, "attributed_revenue") == money(klaviyo["attributed_revenue"], "$")
    share = Decimal(klaviyo["attributed_revenue"]) / Decimal(shopify["total_sales"]) * 100
    assert kpi(page, "attributed_share") == f"{share.quantize(Decimal('0.1'))}%"
    # The tables list every campaign and flow, biggest revenue first.
    campaigns = page.locator('[data-table="campaigns"] tbody tr')
    expect(campaigns).to_have_count(len(klaviyo["campaigns"]))
    best = max(klaviyo["campaigns"], key=lambda c: Decimal(c["conversion_value"]))
    expect(campaigns.first).to_contain_text(money(best["conversion_value"], "$"))
    # Sorting is a link per column: by name, A to Z.
    page.locator('[data-table="campaigns"] thead').get_by_role("link", name="Name").click()
    names = sorted(c["name"].lower() for c in klaviyo["campaigns"])
    expect(campaigns.first.locator("th")).to_contain_text(names[0], ignore_case=True)
    expect(page.locator('[data-table="campaigns"] th[aria-sort="ascending"]')).to_have_count(1)


def test_cache_first_then_a_lisbon_store_in_euros(page: Page, site: Site) -> None:
    store_id = site.stores[LISBOA]
    page.goto(f"{site.url}/stores/{store_id}?period=yesterday")
    page.get_by_role("button", name="Sync").click()
    expect(page.locator('#figures [data-notice="fresh"]')).to_be_visible(timeout=60_000)
    period = named_period("yesterday", today_in("Europe/Lisbon"))
    sim = site.deployment.simulator
    truth = sim.truth(LISBOA, period.start.isoformat(), period.end.isoformat())
    assert kpi(page, "total_sales") == money(truth["shopify"]["total_sales"], "€")
    assert kpi(page, "aov") == money(truth["shopify"]["aov"], "€")

    # Pressed again, the seed's flow answers from the cache and queues nothing.
    jobs_before = page.locator("#queue-panel .count-completed dd").inner_text()
    page.get_by_role("button", name="Sync").click()
    expect(page.locator("[data-sync-message]")).to_contain_text("Already up to date")
    assert page.locator("#queue-panel .count-completed dd").inner_text() == jobs_before


def test_rejected_token_shows_its_message_and_retries_from_the_panel(
    page: Page, site: Site
) -> None:
    store_id = site.stores[RIO]
    page.goto(f"{site.url}/stores/{store_id}?period=last_7_days")
    page.get_by_role("button", name="Sync").click()
    failed = page.locator('#figures [data-notice="failed"]')
    expect(failed).to_contain_text(REJECTED, timeout=60_000)
    expect(failed.get_by_role("link", name="Open the store's settings")).to_be_visible()
    failure = page.locator(f'#queue-panel [data-job-state="failed"][data-store-id="{store_id}"]')
    expect(failure).to_have_count(1)
    expect(failure).to_contain_text(REJECTED)
    job_id = failure.get_attribute("data-job-id")

    with page.expect_response(lambda r: r.url.endswith(f"/jobs/{job_id}/retry")) as answer:
        failure.get_by_role("button", name="Retry").click()
    assert answer.value.status == 200
    expect(page.locator("#live-status")).to_contain_text(f"Job {job_id} is queued")
    # The same job runs again (a new event in its log) and fails again with the same message.
    page.goto(f"{site.url}/jobs/{job_id}")
    log = page.locator("#job-detail .log")
    expect(log).to_contain_text("queued again by retry")
    expect(page.locator("#job-detail [data-job-status]")).to_have_text("failed", timeout=30_000)
    expect(log.locator("li").filter(has_text="failed")).to_have_count(2)
    expect(page.locator("#job-detail [data-job-error]")).to_contain_text(REJECTED)


def test_a_spent_klaviyo_budget_is_a_deferral_until_a_time(page: Page, site: Site) -> None:
    account = next(s for s in site.deployment.simulator.config.stores if s.shop_domain == LISBOA)

    async def spend(database: Database) -> None:
        # Another integration of the account spends what is left of today's budget.
        budget = ReportBudget(database, daily_limit=225)
        left = await budget.remaining(account.klaviyo_account_id)
        if left:
            await budget.reserve(account.klaviyo_account_id, left)

    site.deployment.run(spend)
    store_id = site.stores[LISBOA]
    page.goto(f"{site.url}/stores/{store_id}?period=last_7_days")
    page.get_by_role("button", name="Sync").click()
    midnight = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(0), UTC)
    until = midnight.astimezone(ZoneInfo("Europe/Lisbon")).strftime("%H:%M")
    deferred = page.locator('#figures [data-notice="deferred"]')
    expect(deferred).to_contain_text(f"report budget used up until {until}", timeout=30_000)
    waiting = page.locator(f'#queue-panel [data-job-state="queued"][data-store-id="{store_id}"]')
    expect(waiting).to_contain_text(f"Klaviyo report budget used up until {until}")
    page.goto(f"{site.url}/stores")
    row = page.locator(f'tr[data-store-id="{store_id}"] [data-budget]')
    expect(row).to_contain_text("0 of 225")


def test_jobs_page_filters_and_event_log(page: Page, site: Site) -> None:
    rio, acme = site.stores[RIO], site.stores[ACME]
    page.goto(f"{site.url}/stores/{acme}?period=yesterday")
    # The keyboard alone: from the period picker, Tab reaches Show, then Sync.
    page.get_by_label("Period").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sync")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator('#figures [data-notice="fresh"]')).to_be_visible(timeout=60_000)
    page.goto(f"{site.url}/stores/{rio}?period=yesterday")
    page.get_by_role("button", name="Sync").click()
    expect(page.locator('#figures [data-notice="failed"]')).to_be_visible(timeout=60_000)

    page.goto(f"{site.url}/jobs")
    rows = page.locator("#jobs-table tbody tr")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(rows.first).to_be_visible()
    for state in rows.evaluate_all("rows => rows.map(r => r.dataset.jobState)"):
        assert state == "failed"
    page.get_by_label("Store").select_option(str(rio))
    page.get_by_label("Period").select_option("yesterday")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(REJECTED)
    page.get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#jobs-table")).to_contain_text("No jobs match these filters")

    page.get_by_label("Status").select_option("")
    page.get_by_label("Store").select_option(str(acme))
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link").click()
    log = page.locator("#job-detail .log li")
    expect(log.first).to_contain_text("queued by user")
    expect(log.last).to_contain_text("completed")

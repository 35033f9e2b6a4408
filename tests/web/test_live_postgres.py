"""A job finished by a separate ``storesync worker`` process updates the open page, without a
reload: on PostgreSQL the worker's events reach ``storesync serve --no-worker`` through
NOTIFY, and the page's event stream carries them to the browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.harness import SimulatorProcess
from tests.web.conftest import sign_in
from tests.web.support import Deployment, money

ACME = "acme-outdoors.myshopify.com"


@pytest.fixture
def deployment(db_url: str, tmp_path: Path, simulator: SimulatorProcess) -> Iterator[Deployment]:
    deployed = Deployment(db_url, tmp_path, simulator)
    yield deployed
    deployed.stop_all()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_separate_worker_updates_the_open_page(
    context: BrowserContext, deployment: Deployment
) -> None:
    store = deployment.add_demo_stores("live")[ACME]
    token = deployment.token("live")
    server = deployment.serve("--no-worker")
    page = context.new_page()
    sign_in(page, server.url, token)
    page.goto(f"{server.url}/stores/{store}?period=last_7_days")
    expect(page.locator("[data-conn]")).to_have_attribute("data-conn", "live")
    page.evaluate("window.__same_page = true")

    page.get_by_role("button", name="Sync").click()
    waiting = page.locator(f'#queue-panel [data-job-state="queued"][data-store-id="{store}"]')
    expect(waiting).to_be_visible()
    expect(page.locator("#queue-panel")).to_contain_text("no worker is alive")
    expect(page.locator('#figures [data-notice="queued"]')).to_be_visible()

    deployment.worker()
    expect(page.locator('#figures [data-notice="fresh"]')).to_be_visible(timeout=60_000)
    expect(waiting).to_have_count(0)
    expect(page.locator("#queue-panel")).to_contain_text("1 worker alive")
    assert page.evaluate("window.__same_page") is True  # the page was never reloaded

    period = page.locator("#figures").get_attribute("data-live") or ""
    assert "period=last_7_days" in period
    start = page.locator('input[name="start"]').input_value()
    end = page.locator('input[name="end"]').input_value()
    truth = deployment.simulator.truth(ACME, start, end)
    value = page.locator('[data-kpi="total_sales"] .value')
    expect(value).to_have_text(money(truth["shopify"]["total_sales"], "$"))

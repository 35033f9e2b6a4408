"""``storesync demo`` end to end, and the screenshots the README shows.

The command prints a one-time sign-in link; the link signs in once (never twice); the three
simulated stores fill in within seconds (the failing one with its clear error); and the main
pages are photographed on a laptop-sized and a phone-sized screen (into docs/screenshots/ with
``make screenshots``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.support import SCREENSHOTS, stop

LINK = re.compile(r"(http://127\.0\.0\.1:\d+)/sign-in/once/(\S+)")
REJECTED = "the Shopify access token was rejected: update it in the store's settings"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A running ``storesync demo``: its base URL, its sign-in link, and its log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORESYNC_")}
    env["STORESYNC_SHUTDOWN_GRACE_SECONDS"] = "1"
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "storesync", "demo", "--port", "0",
             "--data-dir", str(tmp_path / "demo")],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (found := LINK.search(log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no sign-in link printed:\n{log.read_text()}"
            time.sleep(0.1)
        yield found.group(1), found.group(0), log
    finally:
        stop(process)  # Ctrl+C
    assert process.returncode in (0, 130), log.read_text()  # 130: "ended by Ctrl+C"
    assert "Traceback" not in log.read_text()


def shoot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / name, full_page=full_page)


def test_demo_signs_in_once_and_comes_alive(browser: Browser, demo: tuple[str, str, Path]) -> None:
    base, link, log = demo
    assert "API token:" in log.read_text()
    laptop = browser.new_context(viewport={"width": 1280, "height": 860})
    laptop.set_default_timeout(30_000)
    page = laptop.new_page()
    page.goto(link)
    assert page.url == f"{base}/stores"
    rows = page.locator("table.stores tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("[data-conn]")).to_have_attribute("data-conn", "live")

    # The link works once: another browser cannot use it again.
    stranger = browser.new_context()
    again = stranger.new_page()
    response = again.goto(link)
    assert response is not None and response.status == 410
    expect(again.get_by_role("alert")).to_contain_text("already used or has expired")
    stranger.close()

    # Within seconds the big store's week is cached, with the week before for comparison.
    page.get_by_role("main").get_by_role("link", name="Acme Outdoors").click()
    expect(page.locator('#figures [data-notice="fresh"]')).to_be_visible()
    change = page.locator('[data-kpi="total_sales"] .change')
    expect(change).to_contain_text("%")
    expect(page.locator("#figures svg .bar")).to_have_count(7)
    shoot(page, "dashboard.png")

    page.goto(f"{base}/stores")
    rio = page.locator("tbody tr").filter(has_text="Rio Moda")
    expect(rio.locator(".badge")).to_have_text("failed")  # live: once its last job failed
    expect(rio).to_contain_text(REJECTED)
    expect(rows.filter(has_text="Loja Lisboa").locator(".badge")).not_to_have_text("stale")
    shoot(page, "stores.png")
    shoot_panel(page)

    rio.get_by_role("link", name="Rio Moda").click()
    expect(page.locator('#figures [data-notice="failed"]')).to_contain_text(REJECTED)
    shoot(page, "dashboard-error.png")

    page.goto(f"{base}/jobs")
    expect(page.locator("#jobs-table tbody tr").first).to_be_visible()
    shoot(page, "jobs.png")
    laptop.close()

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    small.goto(base + "/stores")  # no session in this profile: the sign-in page
    expect(small.get_by_label("API token")).to_be_visible()
    token = re.search(r"API token:\s+(\S+)", log.read_text())
    assert token is not None
    small.get_by_label("API token").fill(token.group(1))
    small.get_by_role("button", name="Sign in").click()
    small.get_by_role("main").get_by_role("link", name="Acme Outdoors").click()
    expect(small.locator('#figures [data-notice="fresh"]')).to_be_visible()
    shoot(small, "dashboard-phone.png", full_page=False)
    phone.close()


def shoot_panel(page: Page) -> None:
    """The queue panel, ideally while a month-long sync shows its progress."""
    panel = page.locator("#queue-panel")
    try:
        expect(panel.locator('[data-job-state="processing"]').first).to_be_visible(timeout=10_000)
    except AssertionError:
        pass  # everything finished already: the panel shows counts and failures
    # The panel is swapped in anew at every event: photograph its place on the page rather
    # than the element, which may be replaced halfway through.
    page.evaluate("window.scrollTo(0, 0)")
    box = None
    for _ in range(50):  # between a swap's removal and insertion the panel has no box
        box = panel.bounding_box()
        if box is not None:
            break
        page.wait_for_timeout(100)
    assert box is not None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "queue-panel.png", full_page=True, clip=box)

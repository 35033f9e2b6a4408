"""Fixtures of the browser tests: the simulator, Chromium, and a signed-in page.

Chromium is Debian's (``scripts/install-chromium.sh`` installs it; ``make test`` runs that
first), driven by Playwright's own driver: ``playwright install`` is never needed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import IN_CI, _admin, _create_template, pg_url
from tests.harness import SimulatorProcess, run_simulator
from tests.web.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Deployment,
    Server,
    in_ci,
    run_async,
    simulator_config,
)

#: A laptop-sized window; the phone-sized one is set by the tests that want it.
VIEWPORT = {"width": 1280, "height": 860}


# The database fixtures of tests/conftest.py, with their database calls made in a thread of
# their own: Playwright's sync API keeps an event loop running in the tests' thread.


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    name = f"storesync_webtpl_{os.getpid()}"
    try:
        run_async(_create_template(name))
    except (OSError, asyncpg.PostgresError) as exc:
        if IN_CI:
            raise RuntimeError(f"PostgreSQL is required in CI: {exc}") from exc
        yield None
        return
    yield name
    run_async(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def db_url(backend: str, tmp_path: Path, pg_template: str | None) -> Iterator[str]:
    """A fresh database of the current backend (migrated when the deployment first uses it)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/storesync.db"
        return
    if pg_template is None:
        pytest.skip("PostgreSQL is not reachable (it is required, and runs, in CI)")
    name = f"storesync_t_{uuid.uuid4().hex[:12]}"
    run_async(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield pg_url(name)
    run_async(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# Module scope, not session: Playwright's sync API keeps an event loop running in the test's
# thread, and tests of other modules run later in the same process (xdist) need it gone.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: run scripts/install-chromium.sh"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    with run_simulator(simulator_config(), tmp_path_factory.mktemp("web-sim")) as sim:
        yield sim


class Site:
    """The suite's main deployment: a SQLite database with the demo's three stores in
    account ``web``, and ``storesync serve`` with its embedded worker (no scheduler: the
    tests decide what is queued)."""

    def __init__(self, deployment: Deployment, server: Server, stores: dict[str, int]) -> None:
        self.deployment = deployment
        self.server = server
        self.stores = stores
        self.token = deployment.token("web")
        self.url = server.url


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, simulator: SimulatorProcess) -> Iterator[Site]:
    data_dir: Path = tmp_path_factory.mktemp("web-site")
    deployment = Deployment(f"sqlite:///{data_dir}/storesync.db", data_dir, simulator)
    stores = deployment.add_demo_stores("web")
    server = deployment.serve("--no-scheduler")
    try:
        yield Site(deployment, server, stores)
    finally:
        deployment.stop_all()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) for one test."""
    ctx = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


def sign_in(page: Page, base_url: str, token: str) -> None:
    """Sign in through the form, as a person would."""
    page.goto(f"{base_url}/sign-in")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/stores")

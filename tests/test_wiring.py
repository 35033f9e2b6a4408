"""The API and the web pages are independent siblings, wired together in storesync.app only.

scripts/check.sh enforces the layers with import-linter; the first test states issue 15's rule
in the test run too, and the second checks that the one assembled app still serves the API,
the pages and ``/static`` behind the body limits.
"""

from __future__ import annotations

import grimp
import httpx
import pytest

from storesync.app import create_app
from storesync.settings import Settings


@pytest.mark.parametrize(
    ("importer", "imported"),
    [("storesync.api", "storesync.web"), ("storesync.web", "storesync.api")],
)
def test_api_and_web_do_not_import_each_other(importer: str, imported: str) -> None:
    graph = grimp.build_graph("storesync", cache_dir=None)
    chains = graph.find_shortest_chains(importer=importer, imported=imported)
    assert chains == set(), f"{importer} imports {imported}: {sorted(chains)}"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_one_app_serves_the_api_the_pages_and_the_static_files(settings: Settings) -> None:
    app = create_app(settings, embedded_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            api = await client.get("/api/stores")
            assert api.status_code == 401, api.text  # the API's bearer check
            assert "bearer" in api.json()["detail"]
            page = await client.get("/sign-in")
            assert page.status_code == 200
            assert "text/html" in page.headers["content-type"]
            assert (await client.get("/static/app.css")).status_code == 200
            too_big = b"x" * (settings.form_max_body_bytes + 1)
            refused = await client.post("/sign-in", content=too_big)
            assert refused.status_code == 413  # the body limits cover the pages' forms too

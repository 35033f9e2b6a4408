"""Links Klaviyo returns: followed on the configured origin only, under a base URL with a path.

The private key goes with every request, so ``links.next`` is followed only when its scheme,
host and port are the configured base URL's. A base URL with a path (an API gateway or an
egress proxy, ``https://proxy.internal/klaviyo``) keeps its path exactly once on every page.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.routing import Mount, Router

from storesync.errors import PermanentError
from storesync.periods import Period
from storesync.providers.klaviyo_api import KlaviyoAPI
from storesync.settings import Settings
from storesync.simulator import Simulator

from .helpers import NY, TEST_RETRY, Rig, migrated, sim_config, test_settings, truth

KEY = "pk_test_links"


@pytest.fixture
async def gateway_rig(simulator: Simulator, tmp_path: Path) -> AsyncIterator[Rig]:
    """The simulator served under ``/klaviyo`` on another host, as a gateway would."""
    simulator.configure(sim_config().to_json())
    simulator.reset()
    settings = test_settings(tmp_path, "http://sim", klaviyo_base_url="http://gateway/klaviyo/")
    database = await migrated(settings)
    app = Router(routes=[Mount("/klaviyo", app=simulator.app)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        yield Rig(http, settings, database, simulator)
    await database.dispose()


async def test_a_base_url_with_a_path_keeps_it_once_on_every_page(gateway_rig: Rig) -> None:
    sim = gateway_rig.sim
    assert sim is not None
    sim.configure({"report_page_size": 4})
    period = Period(date(2025, 6, 1), date(2025, 7, 31))
    tz = ZoneInfo(sim.store(NY).timezone)
    figures = await gateway_rig.klaviyo(NY).fetch_performance(period, tz)
    assert figures == (await truth(gateway_rig, NY, period))[1]
    records = sim.requests.records(provider="klaviyo")
    assert records and all(r.status == 200 for r in records)
    assert all(r.path.startswith("/klaviyo/api/") for r in records)
    followed = [r for r in records if "cursor" in r.query]
    assert {r.endpoint for r in followed} >= {"campaigns", "campaign-values-reports"}


def api(base: str, tmp_path: Path, handler: httpx.MockTransport | None = None) -> KlaviyoAPI:
    settings = Settings(data_dir=tmp_path, klaviyo_base_url=base, http_timeout_seconds=1)
    http = httpx.AsyncClient(
        transport=handler or httpx.MockTransport(lambda r: httpx.Response(500))
    )
    return KlaviyoAPI(http, settings, private_key=KEY, retry=TEST_RETRY)


@pytest.mark.parametrize(
    ("base", "link", "expected"),
    [
        ("https://a.klaviyo.com", "/api/flows", "https://a.klaviyo.com/api/flows"),
        (
            "https://a.klaviyo.com",
            "https://a.klaviyo.com/api/flows?page%5Bcursor%5D=x",
            "https://a.klaviyo.com/api/flows?page%5Bcursor%5D=x",
        ),
        (
            "https://a.klaviyo.com",
            "https://A.Klaviyo.com:443/api/flows?page_cursor=x",
            "https://a.klaviyo.com/api/flows?page_cursor=x",  # sent to the configured netloc
        ),
        (
            "https://proxy.internal/klaviyo",
            "https://proxy.internal/klaviyo/api/flows?page%5Bcursor%5D=x",
            "https://proxy.internal/klaviyo/api/flows?page%5Bcursor%5D=x",
        ),
        (  # a gateway that hands back the upstream path: the prefix is added, once
            "https://proxy.internal/klaviyo",
            "https://proxy.internal/api/flows?page%5Bcursor%5D=x",
            "https://proxy.internal/klaviyo/api/flows?page%5Bcursor%5D=x",
        ),
        (
            "https://proxy.internal/klaviyo",
            "/api/flows",
            "https://proxy.internal/klaviyo/api/flows",
        ),
    ],
)
def test_links_on_the_configured_origin(
    base: str, link: str, expected: str, tmp_path: Path
) -> None:
    assert api(base, tmp_path).url(link) == expected


@pytest.mark.parametrize(
    "link",
    [
        "https://a.klaviyo.com.evil.example.com/api/metrics?page%5Bcursor%5D=x",
        ".evil.example.com/api/metrics?page%5Bcursor%5D=x",
        "evil.example.com/api/metrics",
        "//evil.example.com/api/metrics",
        "http://a.klaviyo.com/api/metrics?page%5Bcursor%5D=x",  # another scheme
        "https://a.klaviyo.com:8443/api/metrics?page%5Bcursor%5D=x",  # another port
        "https://a.klaviyo.com@evil.example.com/api/metrics",
        "https://evil.example.com/klaviyo/api/metrics",
        "ftp://a.klaviyo.com/api/metrics",
    ],
)
async def test_a_link_to_another_origin_never_gets_the_key(link: str, tmp_path: Path) -> None:
    sent: list[httpx.Request] = []

    def klaviyo(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        following = link if len(sent) == 1 else None  # one hostile link, then the end
        body = {"data": [{"type": "metric", "id": f"M{len(sent)}"}], "links": {"next": following}}
        return httpx.Response(200, content=json.dumps(body).encode())

    client = api("https://a.klaviyo.com", tmp_path, httpx.MockTransport(klaviyo))
    seen = []
    with pytest.raises(PermanentError, match="not followed") as refused:
        async for item in client.paginate("/api/metrics"):
            seen.append(item["id"])
    assert seen == ["M1"]
    assert [str(r.url) for r in sent] == ["https://a.klaviyo.com/api/metrics"]
    assert KEY not in str(refused.value) and "page" not in str(refused.value)

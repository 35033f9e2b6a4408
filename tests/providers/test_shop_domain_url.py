"""The Shopify client builds its URL only for a Shopify shop domain: a store row holding any
other host (written before the rule existed, or by hand) fails with a clear message and the
access token is never sent anywhere."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from storesync.errors import PermanentError
from storesync.providers.shopify import ShopifyClient
from storesync.providers.shopify_api import endpoint_url
from storesync.providers.shopify_pacing import CostBucket
from storesync.settings import Settings

TOKEN = "shpat_must_stay_home"


def _settings(tmp_path: Path, **overrides: str) -> Settings:
    return Settings(data_dir=tmp_path, **overrides)  # type: ignore[arg-type]


def test_the_endpoint_is_built_for_shopify_domains_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert (
        endpoint_url(settings, "acme.myshopify.com")
        == "https://acme.myshopify.com/admin/api/2025-10/graphql.json"
    )
    for stored in (
        "127.0.0.1",
        "169.254.169.254",
        "evil.example.com",
        "acme.myshopify.com.evil.example.com",
        "127.0.0.1/some/path",
        "acme.myshopify.com:443",
        "ACME.myshopify.com",  # not the normal form the directory stores
    ):
        with pytest.raises(PermanentError, match=r"will not send it the access token|normal form"):
            endpoint_url(settings, stored)


def test_a_simulator_host_needs_the_explicit_setting(tmp_path: Path) -> None:
    base = "http://127.0.0.1:9999/shops/{shop}"
    # Pointing the base URL at a simulator does not by itself allow other shop hosts...
    with pytest.raises(PermanentError):
        endpoint_url(_settings(tmp_path, shopify_base_url=base), "shop.sim.test")
    # ...the allow-list does.
    allowed = _settings(tmp_path, shopify_base_url=base, shopify_allowed_hosts="*.sim.test")
    assert endpoint_url(allowed, "shop.sim.test") == (
        "http://127.0.0.1:9999/shops/shop.sim.test/admin/api/2025-10/graphql.json"
    )


async def test_no_request_leaves_for_another_host(tmp_path: Path) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"data": {"shop": {"currencyCode": "USD"}}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        for domain in ("127.0.0.1", "evil.example.com", "acme.myshopify.com.evil.example.com"):
            for bucket in (None, CostBucket()):
                with pytest.raises(PermanentError) as refused:
                    ShopifyClient(
                        http,
                        _settings(tmp_path),
                        shop_domain=domain,
                        access_token=TOKEN,
                        bucket=bucket,
                    )
                assert TOKEN not in str(refused.value)
                assert "remove the store and add it again" in str(refused.value)
        fine = ShopifyClient(
            http, _settings(tmp_path), shop_domain="acme.myshopify.com", access_token=TOKEN
        )
        assert await fine.shop_currency() == "USD"
    assert [str(r.url.host) for r in sent] == ["acme.myshopify.com"]

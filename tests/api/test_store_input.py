"""Store input over the HTTP API: shop domains confined to Shopify, one store per shop across
accounts (409), and the store rules (name, credentials, currency, time zone) answered with a
422 that says what is wrong, with nothing written."""

from __future__ import annotations

import httpx

from tests.api.support import Deployment, bearer

STORE = {
    "name": "Acme Outdoors",
    "shopify_domain": "acme-outdoors.myshopify.com",
    "shopify_token": "shpat_written_never_read",
    "timezone": "America/New_York",
}

BAD_DOMAINS = [
    "evil.example.com",
    "127.0.0.1",
    "169.254.169.254",
    "acme.myshopify.com.evil.example.com",
    "https://127.0.0.1/some/path",
    "https://acme.myshopify.com/some/path",
    "acme.myshopify.com:443",
    "http://acme.myshopify.com",
]

BAD_FIELDS = [
    ({"name": "Acme\u0000"}, "name"),
    ({"name": "x" * 5000}, "name"),
    ({"name": "Ac\u001bme"}, "control characters"),
    ({"name": "   "}, "needs a name"),
    ({"shopify_token": "   "}, "must not be blank"),
    ({"klaviyo_key": "   "}, "must not be blank"),
    ({"currency": "usdollar"}, "currency"),
    ({"timezone": "localtime"}, "unknown time zone"),
    ({"timezone": "Factory"}, "unknown time zone"),
    ({"timezone": "right/UTC"}, "unknown time zone"),
    ({"timezone": "posix/Europe/Lisbon"}, "unknown time zone"),
]


def test_store_input_is_checked_before_anything_is_written(deployment: Deployment) -> None:
    url = deployment.serve(worker=False)
    with httpx.Client(base_url=url, headers=bearer(deployment.token("agency")), timeout=10) as api:
        for domain in BAD_DOMAINS:
            refused = api.post("/api/stores", json={**STORE, "shopify_domain": domain})
            assert refused.status_code == 422, (domain, refused.text)
            assert "is not a Shopify shop domain" in refused.json()["detail"]
        for change, reason in BAD_FIELDS:
            refused = api.post("/api/stores", json={**STORE, **change})
            assert refused.status_code == 422, (change, refused.text)
            assert reason in refused.json()["detail"], refused.json()
        assert api.get("/api/stores").json()["items"] == []

        created = api.post("/api/stores", json={**STORE, "currency": "eur"})
        assert created.status_code == 201, created.text
        assert created.json()["currency"] == "EUR"
        path = f"/api/stores/{created.json()['id']}"
        for change, _reason in [*BAD_FIELDS, ({"shopify_token": ""}, "")]:
            refused = api.patch(path, json=change)
            assert refused.status_code == 422, (change, refused.text)
        # One bad field refuses the whole change.
        assert api.patch(path, json={"name": "New", "timezone": "localtime"}).status_code == 422
        assert api.get(path).json() == created.json()


def test_a_shop_can_be_added_by_one_account_only(deployment: Deployment) -> None:
    url = deployment.serve(worker=False)
    agency, rival = deployment.token("agency"), deployment.token("rival")
    with httpx.Client(base_url=url, timeout=10) as api:
        first = api.post("/api/stores", json=STORE, headers=bearer(agency))
        assert first.status_code == 201, first.text
        for domain in ("acme-outdoors.myshopify.com", "https://Acme-Outdoors.myshopify.com"):
            taken = api.post(
                "/api/stores", json={**STORE, "shopify_domain": domain}, headers=bearer(rival)
            )
            assert taken.status_code == 409, taken.text
            detail = taken.json()["detail"]
            assert "acme-outdoors.myshopify.com already exists in another account" in detail
            assert "agency" not in detail
        assert api.get("/api/stores", headers=bearer(rival)).json()["items"] == []
        again = api.post("/api/stores", json=STORE, headers=bearer(agency))
        assert again.status_code == 409
        assert "already has a store for acme-outdoors.myshopify.com" in again.json()["detail"]

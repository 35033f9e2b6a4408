"""Store CRUD (credentials write-only), the job routes (filters, pagination, cancel, retry),
queue statistics and the health check."""

from __future__ import annotations

from datetime import date, timedelta

import httpx

from tests.api.support import Deployment, bearer

NEW_STORE = {
    "name": "Acme Outdoors",
    "shopify_domain": "https://Acme-Outdoors.myshopify.com/",
    "shopify_token": "shpat_written_never_read",
    "klaviyo_key": "pk_written_never_read",
    "timezone": "America/New_York",
    "refresh_periods": ["today", "yesterday"],
}


def test_store_crud(deployment: Deployment) -> None:
    url = deployment.serve(worker=False)
    token = deployment.token("agency")
    with httpx.Client(base_url=url, headers=bearer(token), timeout=10) as client:
        created = client.post("/api/stores", json=NEW_STORE)
        assert created.status_code == 201, created.text
        store = created.json()
        assert created.headers["location"] == f"/api/stores/{store['id']}"
        assert store | {"id": 0, "created_at": ""} == {
            "id": 0,
            "account": "agency",
            "name": "Acme Outdoors",
            "shopify_domain": "acme-outdoors.myshopify.com",
            "timezone": "America/New_York",
            "currency": None,
            "refresh_periods": ["today", "yesterday"],
            "has_klaviyo": True,
            "created_at": "",
        }
        duplicate = client.post("/api/stores", json=NEW_STORE)
        assert duplicate.status_code == 409
        assert "already has a store for acme-outdoors.myshopify.com" in duplicate.json()["detail"]

        path = f"/api/stores/{store['id']}"
        changed = client.patch(path, json={"name": "Acme", "currency": "usd"})
        assert (changed.json()["name"], changed.json()["currency"]) == ("Acme", "USD")
        assert client.get(path).json()["name"] == "Acme"
        assert client.patch(path, json={"password": "x"}).status_code == 422

        for n in range(3):
            client.post(
                "/api/stores", json={**NEW_STORE, "shopify_domain": f"shop-{n}.myshopify.com"}
            )
        first = client.get("/api/stores", params={"limit": 3}).json()
        assert (len(first["items"]), first["next_offset"]) == (3, 3)
        rest = client.get("/api/stores", params={"limit": 3, "offset": 3}).json()
        assert (len(rest["items"]), rest["next_offset"]) == (1, None)

        assert client.delete(path).status_code == 204
        assert client.get(path).status_code == 404
        assert client.delete(path).status_code == 404
        everything = [first, rest, created.json(), changed.json()]
        assert "written_never_read" not in str(everything)


def test_jobs_routes(deployment: Deployment) -> None:
    url = deployment.serve(worker=False)
    store = deployment.add_store("loja-lisboa.myshopify.com")
    token = deployment.token("default")
    with httpx.Client(base_url=url, headers=bearer(token), timeout=10) as client:
        ids = []
        for n in range(5):
            day = date(2025, 3, 1) + timedelta(days=n)
            answer = client.post(
                f"/api/stores/{store}/sync", json={"start": str(day), "end": str(day)}
            )
            assert answer.status_code == 202
            ids.append(answer.json()["id"])

        page = client.get("/api/jobs", params={"limit": 2}).json()
        assert [j["id"] for j in page["items"]] == ids[::-1][:2]
        assert page["next_offset"] == 2
        last = client.get("/api/jobs", params={"limit": 2, "offset": 4}).json()
        assert ([j["id"] for j in last["items"]], last["next_offset"]) == ([ids[0]], None)
        assert len(client.get("/api/jobs", params={"store_id": store}).json()["items"]) == 5
        assert client.get("/api/jobs", params={"status": "processing"}).json()["items"] == []
        assert client.get("/api/jobs", params={"status": "lost"}).status_code == 422

        cancelled = client.post(f"/api/jobs/{ids[0]}/cancel")
        assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
        again = client.post(f"/api/jobs/{ids[0]}/cancel")
        assert again.status_code == 409
        assert again.json() == {
            "detail": f"job {ids[0]} is already cancelled; only queued or processing jobs "
            "can be cancelled"
        }
        assert client.post(f"/api/jobs/{ids[1]}/retry").status_code == 409
        retried = client.post(f"/api/jobs/{ids[0]}/retry")
        assert (retried.status_code, retried.json()["status"]) == (200, "queued")
        detail = client.get(f"/api/jobs/{ids[0]}").json()
        assert [e["kind"] for e in detail["events"]] == ["queued", "cancel", "queued"]
        assert client.get("/api/jobs", params={"status": "cancelled"}).json()["items"] == []
        assert client.get("/api/jobs/999999").status_code == 404

        stats = client.get("/api/queue/stats").json()
        assert (stats["queued"], stats["workers"]) == (5, [])
        assert any("no worker is alive" in d for d in stats["diagnosis"])

    health = httpx.get(f"{url}/healthz").json()
    assert health == {
        "status": "ok",
        "database": deployment.settings_dialect(),
        "worker": "disabled",
    }

"""Tokens and accounts: 401 without a valid token, 404 for another account's things, and no
response ever carries a credential."""

from __future__ import annotations

import httpx

from tests.api.support import Deployment, bearer, recent_period

SHOP = "loja-lisboa.myshopify.com"
OTHER_SHOP = "rio-moda.myshopify.com"  # a shop is in one store only (one account)


def test_no_token_wrong_token_other_account(deployment: Deployment) -> None:
    url = deployment.serve(worker=False)
    mine = deployment.add_store(SHOP, account="agency")
    theirs = deployment.add_store(OTHER_SHOP, account="rival")
    token = deployment.token("agency")
    rival = deployment.token("rival")
    period = recent_period()
    dates = {"start": period.start.isoformat(), "end": period.end.isoformat()}
    secrets = [
        deployment.simulator.stores[SHOP][k] for k in ("shopify_token", "klaviyo_private_key")
    ]
    bodies: list[str] = []

    with httpx.Client(base_url=url, timeout=10) as client:

        def call(method: str, path: str, token: str | None, **kwargs: object) -> httpx.Response:
            headers = bearer(token) if token else {}
            response = client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
            bodies.append(response.text)
            return response

        dashboard = f"/api/stores/{mine}/dashboard"
        missing = call("GET", dashboard, None, params=dates)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json() == {
            "detail": "missing bearer token: send 'Authorization: Bearer <token>'"
        }
        wrong = call("GET", dashboard, "sst_not-a-real-token-at-all", params=dates)
        assert (wrong.status_code, wrong.json()) == (401, {"detail": "unknown API token"})
        assert call("GET", dashboard, None, params=dates).status_code == 401
        for path in ("/api/stores", "/api/jobs", "/api/queue/stats", "/api/events", "/metrics"):
            assert call("GET", path, None).status_code == 401, path
        assert call("GET", "/healthz", None).status_code == 200

        # The rival's store and job are invisible: 404, exactly as for an id that does not exist.
        other = call("GET", f"/api/stores/{theirs}/dashboard", token, params=dates)
        assert (other.status_code, other.json()) == (
            404,
            {"detail": f"store {theirs} does not exist"},
        )
        assert call("GET", f"/api/stores/{theirs}", token).status_code == 404
        assert call("PATCH", f"/api/stores/{theirs}", token, json={"name": "x"}).status_code == 404
        assert call("DELETE", f"/api/stores/{theirs}", token).status_code == 404
        assert call("POST", f"/api/stores/{theirs}/sync", token, json=dates).status_code == 404
        assert call("GET", "/api/jobs", token, params={"store_id": theirs}).status_code == 404
        rival_job = call("POST", f"/api/stores/{theirs}/sync", rival, json=dates)
        assert rival_job.status_code == 202
        job_id = rival_job.json()["id"]
        for method, path in (
            ("GET", f"/api/jobs/{job_id}"),
            ("POST", f"/api/jobs/{job_id}/cancel"),
            ("POST", f"/api/jobs/{job_id}/retry"),
        ):
            answer = call(method, path, token)
            assert (answer.status_code, answer.json()) == (
                404,
                {"detail": f"job {job_id} does not exist"},
            )
        assert call("GET", "/api/jobs", token).json()["items"] == []
        assert [s["id"] for s in call("GET", "/api/stores", token).json()["items"]] == [mine]

        # Everything the owner can see, none of it with a credential.
        own = call("GET", f"/api/stores/{mine}", token).json()
        assert own["has_klaviyo"] is True
        assert not {"shopify_token", "klaviyo_key"} & set(own)
        call("GET", "/api/stores", token)
        call("PATCH", f"/api/stores/{mine}", token, json={"shopify_token": "shpat_rotated_123"})
        call("GET", f"/api/stores/{mine}/dashboard", token, params=dates)
        call("GET", "/api/jobs", token)
        call("GET", "/openapi.json", None)

    leaked = [b for b in bodies for s in [*secrets, "shpat_rotated_123"] if s in b]
    assert leaked == []
    assert not any(s in deployment.logs() for s in [*secrets, "shpat_rotated_123"])

"""API tokens (list, create, revoke, expiry, last use, scope), the throttle of failed
authentications, and what operational data a token may see: on SQLite and PostgreSQL, against
the real app in-process (``httpx.ASGITransport``) and a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from storesync.accounts import ACCOUNTS, TOKENS, create_token, issue_token, list_tokens
from storesync.app import create_app
from storesync.queue import JobQueue
from storesync.queue.stats import queue_stats
from storesync.queue.workers import WorkerRegistry
from storesync.settings import Settings
from storesync.storage import Database
from storesync.stores import StoreDirectory
from tests.conftest import add_store

Client = Callable[..., httpx.AsyncClient]


@asynccontextmanager
async def app_clients(settings: Settings, **changes: Any) -> AsyncIterator[Client]:
    """The app (no embedded worker) and a maker of clients, each from a client address.
    Event streams send a keepalive (and check their token) every 0.2 s."""
    app = create_app(settings.model_copy(update=changes), embedded_worker=False)
    opened: list[httpx.AsyncClient] = []

    def client(token: str | None = None, address: str = "10.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        made = httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers)
        opened.append(made)
        return made

    async with app.router.lifespan_context(app):
        app.state.context.streams.keepalive = 0.2
        try:
            yield client
        finally:
            for made in opened:
                await made.aclose()


async def test_an_account_lists_creates_and_revokes_its_tokens(
    settings: Settings, database: Database
) -> None:
    first = await create_token(database, "agency", "laptop")
    rival = await create_token(database, "rival")
    async with app_clients(settings) as client:
        api = client(first)
        made = await api.post("/api/tokens", json={"label": "ci", "expires_in_days": 30})
        assert made.status_code == 201, made.text
        created = made.json()
        second = created["token"]
        assert second.startswith("sst_") and created["scope"] == "normal"
        expires = datetime.fromisoformat(created["expires_at"])
        assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)

        assert (await client(second).get("/api/stores")).status_code == 200
        listed = (await api.get("/api/tokens")).json()["items"]
        assert [(t["label"], t["active"], t["revoked_at"]) for t in listed] == [
            ("laptop", True, None),
            ("ci", True, None),
        ]
        # Never a secret: neither token, nor a hash of one, nor the rival's tokens.
        listing = str(listed)
        assert first not in listing and second not in listing and "token_hash" not in listing
        assert all(set(t) >= {"id", "created_at", "last_used_at", "expires_at"} for t in listed)

        # Admin tokens come from the command line only.
        escalate = await api.post("/api/tokens", json={"scope": "admin"})
        assert escalate.status_code == 422
        for bad in ({"expires_in_days": True}, {"expires_in_days": 0}, {"label": "a\x00b"}):
            assert (await api.post("/api/tokens", json=bad)).status_code == 422, bad
        # Another account's token is as absent as one that does not exist.
        (rival_token,) = await list_tokens(database, account="rival")
        rival_id = rival_token.id
        assert (await api.delete(f"/api/tokens/{rival_id}")).status_code == 404
        assert (await client(rival).get("/api/stores")).status_code == 200
        # A token cannot revoke itself (the account keeps one to act with).
        own_id = listed[0]["id"]
        assert (await api.delete(f"/api/tokens/{own_id}")).status_code == 409

        assert (await api.delete(f"/api/tokens/{created['id']}")).status_code == 204
        refused = await client(second).get("/api/stores")
        assert (refused.status_code, refused.json()) == (
            401,
            {"detail": "this API token was revoked"},
        )
        again = await api.delete(f"/api/tokens/{created['id']}")
        assert again.status_code == 204  # revoking twice changes nothing
        after = (await api.get("/api/tokens")).json()["items"]
        assert [t["active"] for t in after] == [True, False]
        assert after[1]["revoked_at"] is not None


async def test_an_expired_token_is_refused(settings: Settings, database: Database) -> None:
    token = await create_token(database, "agency", expires_in_days=1)
    async with app_clients(settings) as client:
        assert (await client(token).get("/api/stores")).status_code == 200
        async with database.transaction() as conn:
            await conn.execute(
                update(TOKENS).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        refused = await client(token).get("/api/stores")
    assert (refused.status_code, refused.json()) == (401, {"detail": "this API token has expired"})


async def test_last_use_is_recorded_at_most_once_a_minute(
    settings: Settings, database: Database
) -> None:
    token = await create_token(database, "agency")

    async def last_used() -> datetime | None:
        async with database.read() as conn:
            return await conn.scalar(select(TOKENS.c.last_used_at))  # type: ignore[no-any-return]

    assert await last_used() is None
    async with app_clients(settings) as client:
        api = client(token)
        await api.get("/api/stores")
        first = await last_used()
        assert first is not None and datetime.now(UTC) - first < timedelta(seconds=30)
        for _ in range(3):
            await api.get("/api/stores")
        assert await last_used() == first  # no write per request


async def test_the_scope_is_normal_unless_given_and_only_normal_or_admin(
    database: Database,
) -> None:
    info, _token = await issue_token(database, "agency")
    async with database.transaction() as conn:
        account_id = await conn.scalar(select(TOKENS.c.account_id))
        # A row written as before migration 0002 (no scope given) is a normal token.
        await conn.execute(
            insert(TOKENS).values(
                account_id=account_id, token_hash="f" * 64, created_at=datetime.now(UTC)
            )
        )
        scopes = (await conn.execute(select(TOKENS.c.scope))).scalars().all()
    assert (info.scope, scopes) == ("normal", ["normal", "normal"])
    with pytest.raises(IntegrityError):
        async with database.transaction() as conn:
            await conn.execute(
                insert(TOKENS).values(
                    account_id=account_id,
                    token_hash="0" * 64,
                    created_at=datetime.now(UTC),
                    scope="root",
                )
            )


async def test_bad_tokens_are_throttled_per_client_address(
    settings: Settings, database: Database
) -> None:
    token = await create_token(database, "agency")
    async with app_clients(settings, auth_failure_limit=3, auth_failure_window_seconds=60) as c:
        guesser = c("sst_guess-guess-guess-guess", address="203.0.113.7")
        for _ in range(3):
            assert (await guesser.get("/api/stores")).status_code == 401
        blocked = await guesser.get("/api/stores")
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        assert "too many failed" in blocked.json()["detail"]
        # The address is blocked whatever it sends, a good token included: guessing stops.
        assert (await c(token, address="203.0.113.7").get("/api/stores")).status_code == 429
        # Other addresses are not affected, nor is a missing token counted as a guess.
        assert (await c(token, address="198.51.100.1").get("/api/stores")).status_code == 200
        for _ in range(5):
            assert (await c(None, address="198.51.100.2").get("/api/stores")).status_code == 401
        assert (await c(token, address="198.51.100.2").get("/api/stores")).status_code == 200


async def _jobs_for(queue: JobQueue, store_id: int, *, outcomes: list[str]) -> None:
    """Put one job per outcome on ``store_id`` (completed, failed or left queued)."""
    for day, outcome in enumerate(outcomes, start=1):
        job = (await queue.enqueue(store_id, date(2026, 1, day), date(2026, 1, day))).job
        if outcome == "queued":
            continue
        (claimed,) = await queue.claim("stats-worker", only=job.id)
        assert claimed.id == job.id
        if outcome == "completed":
            await queue.complete(job.id, "stats-worker")
        else:
            await queue.fail(job.id, "stats-worker", "bad token", retryable=False)


async def test_queue_stats_show_the_accounts_own_jobs_and_hosts_only_to_admins(
    settings: Settings, database: Database, stores: StoreDirectory
) -> None:
    mine = await add_store(stores, 1, account="agency")
    theirs = await add_store(stores, 2, account="rival")
    queue = JobQueue(database, settings)
    await _jobs_for(queue, mine, outcomes=["completed", "failed", "queued"])
    await _jobs_for(queue, theirs, outcomes=["completed", "completed", "completed", "queued"])
    await WorkerRegistry(database, stale_after_seconds=30).register("host-a:4242:abc", 3)
    normal = await create_token(database, "agency")
    admin = await create_token(database, "agency", scope="admin")

    async with app_clients(settings) as client:
        seen = (await client(normal).get("/api/queue/stats")).json()
        as_admin = (await client(admin).get("/api/queue/stats")).json()
    counts = {k: seen[k] for k in ("queued", "processing", "completed", "failed", "cancelled")}
    assert counts == {"queued": 1, "processing": 0, "completed": 1, "failed": 1, "cancelled": 0}
    assert seen["failure_rate_24h"] == pytest.approx(0.5)
    assert seen["avg_duration_seconds_24h"] is not None
    assert [(w["id"], w["hostname"], w["pid"]) for w in seen["workers"]] == [(None, None, None)]
    assert seen["workers"][0]["concurrency"] == 3
    assert [(w["id"], w["hostname"]) for w in as_admin["workers"]] == [
        ("host-a:4242:abc", as_admin["workers"][0]["hostname"])
    ]
    assert as_admin["workers"][0]["hostname"] and as_admin["workers"][0]["pid"]
    assert as_admin["completed"] == 1  # the admin's own account, too

    # The account's figures are the view's, restricted: the accounts' counts add up to it.
    everyone = await queue_stats(database, settings)
    rival = await queue_stats(database, settings, account_id=await _account_id(database, "rival"))
    for status in ("queued", "completed", "failed"):
        assert seen[status] + getattr(rival, status) == getattr(everyone, status)
    assert rival.failure_rate_24h == 0.0
    assert rival.p95_duration_seconds_24h is not None


async def _account_id(database: Database, name: str) -> int:
    async with database.read() as conn:
        found = await conn.scalar(select(ACCOUNTS.c.id).where(ACCOUNTS.c.name == name))
    assert found is not None
    return int(found)


async def test_metrics_answer_admin_tokens_and_the_metrics_token_only(
    settings: Settings, database: Database
) -> None:
    normal = await create_token(database, "agency")
    admin = await create_token(database, "ops", scope="admin")
    async with app_clients(settings, metrics_token=SecretStr("prometheus-scrape-secret")) as client:
        assert (await client(None).get("/metrics")).status_code == 401
        forbidden = await client(normal).get("/metrics")
        assert forbidden.status_code == 403
        assert "admin" in forbidden.json()["detail"]
        for token in (admin, "prometheus-scrape-secret"):
            answer = await client(token).get("/metrics")
            assert answer.status_code == 200
            assert "storesync_queue_depth" in answer.text
        assert (await client("prometheus-wrong").get("/metrics")).status_code == 401
    async with app_clients(settings) as client:  # no metrics token set: admin tokens only
        assert (await client("prometheus-scrape-secret").get("/metrics")).status_code == 401
        assert (await client(admin).get("/metrics")).status_code == 200


async def test_an_open_event_stream_ends_when_its_token_is_revoked(
    settings: Settings, database: Database
) -> None:
    listener = await issue_token(database, "agency", "sse")
    keeper = await issue_token(database, "agency", "keep")
    async with app_clients(settings) as client:
        # The in-process transport hands over a response once it ends: the stream must end.
        stream = asyncio.create_task(client(listener[1]).get("/api/events"))
        await asyncio.sleep(0.5)
        assert not stream.done()
        revoked = await client(keeper[1]).delete(f"/api/tokens/{listener[0].id}")
        assert revoked.status_code == 204
        answer = await asyncio.wait_for(stream, 10)
    assert answer.status_code == 200
    assert answer.text.index("event: ready") < answer.text.index("event: ended")

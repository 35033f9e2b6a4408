"""Browser sessions on the server: signing out (or revoking the token) kills the cookie
wherever it was copied, and failed sign-ins are throttled per address. The real app
in-process (``httpx.ASGITransport``), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from storesync.accounts import create_token, list_tokens, revoke_token
from storesync.app import create_app
from storesync.settings import Settings
from storesync.storage import Database
from storesync.web.session import COOKIE

CSRF = re.compile(r'name="csrf(?:-token)?" (?:value|content)="([^"]+)"')


@asynccontextmanager
async def running(settings: Settings, **changes: Any) -> AsyncIterator[FastAPI]:
    """The app (migrating the database as it starts), without a worker."""
    app = create_app(settings.model_copy(update=changes), embedded_worker=False)
    async with app.router.lifespan_context(app):
        app.state.context.streams.keepalive = 0.2  # event streams check their session as often
        yield app


def browser(app: FastAPI, address: str = "10.0.0.5") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://web")


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    form = await client.get("/sign-in")
    return await client.post(
        "/sign-in", data={"token": token, "csrf": csrf_of(form), "next": "/stores"}
    )


async def test_a_cookie_copied_before_sign_out_is_dead_after_it(
    settings: Settings, database: Database
) -> None:
    async with running(settings) as app, browser(app) as person:
        token = await create_token(database, "agency")
        assert (await sign_in(person, token)).status_code == 303
        page = await person.get("/stores")
        assert page.status_code == 200
        stolen = person.cookies[COOKIE]
        # The in-process transport hands over a response once it ends: the stream must end.
        live = asyncio.create_task(person.get("/web/events"))
        await asyncio.sleep(0.5)
        assert not live.done()

        signed_out = await person.post("/sign-out", data={"csrf": csrf_of(page)})
        assert signed_out.headers["location"] == "/sign-in?notice=signed_out"

        async with browser(app, "10.0.0.66") as thief:
            thief.cookies.set(COOKIE, stolen)
            replay = await thief.get("/stores")
        assert replay.status_code == 303
        assert replay.headers["location"].startswith("/sign-in")
        ended = await asyncio.wait_for(live, 10)
        assert "event: ended" in ended.text


async def test_revoking_a_token_signs_its_browser_sessions_out(
    settings: Settings, database: Database
) -> None:
    async with running(settings) as app, browser(app) as person:
        token = await create_token(database, "agency")
        await sign_in(person, token)
        assert (await person.get("/stores")).status_code == 200
        (info,) = await list_tokens(database, account="agency")
        assert info.last_used_at is not None  # signing in is a use of the token

        await revoke_token(database, info.id)
        assert (await person.get("/stores")).status_code == 303
        again = await sign_in(person, token)
        assert again.status_code == 401
        assert "revoked" in again.text


async def test_failed_sign_ins_are_throttled_per_address(
    settings: Settings, database: Database
) -> None:
    async with running(settings, auth_failure_limit=2, auth_failure_window_seconds=120) as app:
        token = await create_token(database, "agency")
        async with browser(app, "203.0.113.9") as guesser:
            for guess in ("sst_wrong-one-aaaaaaaaaa", "sst_wrong-two-bbbbbbbbbb"):
                assert (await sign_in(guesser, guess)).status_code == 401
            blocked = await sign_in(guesser, token)
            assert blocked.status_code == 429
            assert 1 <= int(blocked.headers["retry-after"]) <= 120
            assert "Too many failed sign-ins" in blocked.text
            link = await guesser.get("/sign-in/once/sst_once_bogus")
            assert link.status_code == 429
        async with browser(app, "198.51.100.9") as someone_else:
            assert (await sign_in(someone_else, token)).status_code == 303

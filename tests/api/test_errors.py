"""The API when its database goes away: a clean 503 that says so, on a connection that stays
usable, and nothing for the server to log as a crash."""

from __future__ import annotations

import httpx
import pytest

from storesync.accounts import create_token
from storesync.app import create_app
from storesync.settings import Settings
from storesync.storage import Database
from tests.conftest import _admin

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


async def test_a_request_while_the_database_is_gone_is_a_503(
    settings: Settings, database: Database
) -> None:
    token = await create_token(database, "default")
    await database.dispose()
    app = create_app(settings, embedded_worker=False)
    async with app.router.lifespan_context(app):
        # The app's errors are raised to the test, as a server would see them re-raised.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            headers = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/api/stores", headers=headers)).status_code == 200
            name = settings.resolved_database_url.rsplit("/", 1)[1]
            await _admin(f'DROP DATABASE "{name}" WITH (FORCE)')

            answer = await client.get("/api/stores", headers=headers)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert answer.json() == {"detail": "the database is unavailable right now; try again shortly"}

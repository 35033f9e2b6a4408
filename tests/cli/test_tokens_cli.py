"""``storesync tokens create | list | revoke`` as real subprocesses, on SQLite and PostgreSQL:
the listing never shows a token, and a revoked token is refused by the very next lookup."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storesync.serving.tokens import TokenAuthority
from storesync.settings import Settings
from storesync.storage import connect
from tests.cli.helpers import as_json, cli_env, last_line, storesync


async def _accounts_of(settings: Settings, *tokens: str) -> list[str | None]:
    database = connect(settings)
    try:
        authority = TokenAuthority(database)
        found = [await authority.account(t) for t in tokens]
        return [a.name if a else None for a in found]
    finally:
        await database.dispose()


def test_tokens_create_list_and_revoke(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, str(tmp_path))
    settings = Settings(database_url=db_url, data_dir=tmp_path)
    laptop = last_line(
        storesync(env, "tokens", "create", "--account", "agency", "--label", "laptop")
    )
    ci = last_line(
        storesync(
            env, "tokens", "create", "--account", "agency", "--label", "ci",
            "--expires-in-days", "7",
        )
    )  # fmt: skip
    ops = last_line(storesync(env, "tokens", "create", "--account", "ops", "--scope", "admin"))

    everything = storesync(env, "tokens", "list", "--json").stdout
    assert not any(t in everything for t in (laptop, ci, ops))
    listed = as_json(storesync(env, "tokens", "list", "--account", "agency", "--json"))
    assert [(t["label"], t["scope"], t["active"]) for t in listed] == [
        ("laptop", "normal", True),
        ("ci", "normal", True),
    ]
    assert listed[0]["expires_at"] is None
    expires = datetime.fromisoformat(listed[1]["expires_at"])
    assert timedelta(days=6) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert [t["scope"] for t in as_json(storesync(env, "tokens", "list", "--json"))] == [
        "normal",
        "normal",
        "admin",
    ]
    table = storesync(env, "tokens", "list", "--account", "agency").stdout
    assert "laptop" in table and "never" in table and laptop not in table

    assert asyncio.run(_accounts_of(settings, laptop, ci)) == ["agency", "agency"]
    revoked = storesync(env, "tokens", "revoke", str(listed[1]["id"]))
    assert f"token {listed[1]['id']} of account 'agency' is revoked" in revoked.stdout
    assert asyncio.run(_accounts_of(settings, laptop, ci)) == ["agency", None]
    after = as_json(storesync(env, "tokens", "list", "--account", "agency", "--json"))
    assert [(t["active"], t["revoked_at"] is not None) for t in after] == [
        (True, False),
        (False, True),
    ]

    missing = storesync(env, "tokens", "revoke", "999999", check=False)
    assert missing.returncode == 2
    assert "token 999999 does not exist" in missing.stderr
    bad_scope = storesync(env, "tokens", "create", "--account", "x", "--scope", "root", check=False)
    assert bad_scope.returncode == 2
    no_days = storesync(
        env, "tokens", "create", "--account", "x", "--expires-in-days", "0", check=False
    )
    assert no_days.returncode == 2

"""``storesync backup PATH``: an online copy of SQLite, or pg_dump; bad input is a clear error.

The round trips through a running deployment (copy, restore, serve) are in tests/deploy.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storesync.cli import app
from storesync.settings import Settings
from storesync.storage import connect, migrate
from storesync.storage.crypto import SecretBox
from storesync.storage.migrate import head_revision
from storesync.stores import StoreDirectory
from tests.conftest import add_store


def backup(env: dict[str, str], *args: str) -> tuple[int, str]:
    """The exit code and the output, with all white space removed (the console wraps lines
    at its width, even inside a path)."""
    result = CliRunner().invoke(app, ["backup", *args], env=env)
    return result.exit_code, squash(result.output)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A SQLite deployment with one store, in ``tmp_path/data``."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    data = tmp_path / "data"
    settings = Settings(data_dir=data, secret_key="backup-test-key")  # type: ignore[arg-type]

    async def main() -> None:
        database = connect(settings)
        await migrate(database)
        await add_store(StoreDirectory(database, SecretBox.from_settings(settings)))
        await database.dispose()

    asyncio.run(main())
    return {
        "STORESYNC_DATA_DIR": str(data),
        "STORESYNC_DATABASE_URL": "",
        "STORESYNC_SECRET_KEY": "backup-test-key",
    }


def test_a_sqlite_backup_is_a_private_self_contained_copy(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "copy.db"
    code, output = backup(sqlite_env, str(target))
    assert code == 0, output
    assert (
        squash(f"to {target}:") in output
        and squash(f"(schema revision {head_revision()})") in output
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "data"]  # no -wal, no temp
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert copy.execute("SELECT shopify_domain FROM stores").fetchall() == [
            ("store-1.myshopify.com",)
        ]
        token = copy.execute("SELECT shopify_token_encrypted FROM stores").fetchone()[0]
        assert "shpat_secret_1" not in token  # still encrypted


def test_bad_targets_are_refused_with_the_reason(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    taken = tmp_path / "taken.db"
    taken.write_text("keep me")
    code, output = backup(sqlite_env, str(taken))
    assert (code, taken.read_text()) == (2, "keep me")
    assert squash(f"{taken} already exists: choose a new name, or pass --force") in output

    code, output = backup(sqlite_env, str(tmp_path / "nowhere" / "x.db"))
    assert code == 2 and squash(f"the directory {tmp_path / 'nowhere'} does not exist") in output

    code, output = backup(sqlite_env, str(tmp_path))
    assert code == 2 and squash("is a directory") in output

    code, output = backup(sqlite_env, "/proc/storesync.db")  # no file can be made there
    assert code == 2 and squash("cannot write /proc/storesync.db:") in output

    database = tmp_path / "data" / "storesync.db"
    code, output = backup(sqlite_env, str(database), "--force")
    assert code == 2 and squash("cannot overwrite the database itself") in output

    code, output = backup(sqlite_env, str(taken), "--force")
    assert code == 0, output
    with sqlite3.connect(taken) as copy:
        assert copy.execute("SELECT count(*) FROM stores").fetchone() == (1,)
    assert not list(tmp_path.glob(".*partial"))


def test_a_missing_sqlite_database_is_not_created_by_a_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"STORESYNC_DATA_DIR": str(tmp_path / "empty"), "STORESYNC_DATABASE_URL": ""}
    code, output = backup(env, str(tmp_path / "x.db"))
    assert code == 2
    assert squash(f"there is no database at {tmp_path / 'empty' / 'storesync.db'}") in output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_postgresql_without_pg_dump_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump here
    env = {"STORESYNC_DATABASE_URL": "postgresql://someone:pa55word-never-shown@db.invalid/x"}
    code, output = backup(env, str(tmp_path / "x.dump"))
    assert code == 1
    assert squash("pg_dump is not installed: install PostgreSQL's client programs") in output
    assert "pa55word" not in output
    assert list(tmp_path.iterdir()) == []


def test_an_unsupported_database_url_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = backup({"STORESYNC_DATABASE_URL": "mysql://a@b/c"}, str(tmp_path / "x"))
    assert code == 2 and squash("unsupported database 'mysql'") in output

"""The operator commands, run as real subprocesses on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from storesync.queue import JobQueue
from storesync.settings import Settings
from storesync.storage import connect
from storesync.storage.migrate import head_revision
from tests.cli.helpers import as_json, cli_env, last_line, storesync


async def _enqueue(settings: Settings, store_id: int, claim: bool) -> int:
    database = connect(settings)
    try:
        queue = JobQueue(database, settings)
        job = (await queue.enqueue(store_id, date(2026, 1, 1), date(2026, 1, 31))).job
        if claim:
            await queue.claim("cli-test-worker")
        return job.id
    finally:
        await database.dispose()


def test_stores_tokens_jobs_stats_and_logs(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, str(tmp_path))
    assert f"schema revision {head_revision()}" in storesync(env, "init").stdout

    added = storesync(
        env,
        "stores", "add", "--name", "Acme", "--shopify-domain", "acme.myshopify.com",
        "--shopify-token", "shpat_topsecret", "--klaviyo-key", "pk_topsecret",
        "--timezone", "Europe/Lisbon", "--account", "agency",
    )  # fmt: skip
    store_id = int(last_line(added))
    listed = as_json(storesync(env, "stores", "list", "--json"))
    assert [(s["id"], s["account"], s["timezone"]) for s in listed] == [
        (store_id, "agency", "Europe/Lisbon")
    ]
    assert "topsecret" not in str(listed)

    token = last_line(storesync(env, "tokens", "create", "--account", "agency"))
    assert token.startswith("sst_") and len(token) > 40

    settings = Settings(database_url=db_url, data_dir=tmp_path)
    job_id = asyncio.run(_enqueue(settings, store_id, claim=True))
    jobs = as_json(storesync(env, "jobs", "--json"))
    assert len(jobs) == 1
    assert {
        "id", "store_id", "status", "priority", "period_start", "period_end",
        "retry_count", "error_message",
    } <= set(jobs[0])  # fmt: skip
    assert (jobs[0]["id"], jobs[0]["status"], jobs[0]["period_start"]) == (
        job_id,
        "processing",
        "2026-01-01",
    )
    assert as_json(storesync(env, "jobs", "--json", "--status", "queued")) == []

    stats = as_json(storesync(env, "stats", "--json"))
    assert stats["processing"] == 1 and stats["workers"] == []
    assert any("no worker is alive" in d for d in stats["diagnosis"])

    events = as_json(storesync(env, "logs", str(job_id), "--json"))
    assert [e["kind"] for e in events] == ["queued", "claimed"]
    assert "no worker is alive" in storesync(env, "stats").stdout


def test_bad_input_is_a_clear_error_that_writes_nothing(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, str(tmp_path))
    bad = storesync(
        env,
        "stores", "add", "--name", "X", "--shopify-domain", "x.myshopify.com",
        "--shopify-token", "t", "--timezone", "Mars/Olympus_Mons",
        check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "unknown time zone 'Mars/Olympus_Mons'" in bad.stderr
    assert as_json(storesync(env, "stores", "list", "--json")) == []

    missing = storesync(env, "logs", "4242", check=False)
    assert missing.returncode == 2 and "job 4242 does not exist" in missing.stderr

    wrong_setting = storesync(
        cli_env(db_url, str(tmp_path), STORESYNC_MAX_CONCURRENT_JOBS="zero"), "jobs", check=False
    )
    assert wrong_setting.returncode == 2
    assert "STORESYNC_MAX_CONCURRENT_JOBS" in wrong_setting.stderr


def test_cleanup_and_prune(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, str(tmp_path), STORESYNC_LEASE_SECONDS="0.001")
    added = storesync(
        env,
        "stores", "add", "--name", "A", "--shopify-domain", "a.myshopify.com",
        "--shopify-token", "t", "--timezone", "UTC",
    )  # fmt: skip
    store_id = int(last_line(added))
    settings = Settings(database_url=db_url, data_dir=tmp_path, lease_seconds=0.001)
    job_id = asyncio.run(_enqueue(settings, store_id, claim=True))
    assert as_json(storesync(env, "cleanup", "--json")) == {"requeued": [job_id], "failed": []}
    assert as_json(storesync(env, "jobs", "--json"))[0]["status"] == "queued"
    assert as_json(storesync(env, "prune", "--older-than-days", "0", "--json")) == {"deleted": 0}

"""The running system of the seed's "Como Funciona", with real processes over TCP:
the CLI, ``storesync worker`` subprocesses and ``storesync simulator``, on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from storesync.queue import JobQueue
from storesync.settings import Settings
from storesync.storage import connect
from tests.cli.helpers import as_json, last_line, storesync
from tests.harness import SimulatorProcess, read_job, start_worker, stop, wait_for
from tests.sync.conftest import add_stores

PERIOD = ("2026-08-01", "2026-08-31")


def truth_document(simulator: SimulatorProcess, shop: str, start: str, end: str) -> dict[str, Any]:
    return simulator.truth(shop, start, end)


def assert_matches_truth(document: dict[str, Any], truth: dict[str, Any]) -> None:
    shopify = {k: v for k, v in document["shopify"].items()}
    assert shopify == truth["shopify"]
    klaviyo = document["klaviyo"]
    assert klaviyo == truth["klaviyo"]
    assert document["summary"]["total_sales"] == truth["shopify"]["total_sales"]


def job_of(env: dict[str, str], job_id: int) -> dict[str, Any]:
    return read_job(env["STORESYNC_DATABASE_URL"], job_id)


def test_sync_inline_then_cache_show_equals_the_truth(
    env: dict[str, str], simulator: SimulatorProcess
) -> None:
    ids = add_stores(env, simulator)
    for shop, store_id in list(ids.items())[:2]:
        result = storesync(env, "sync", str(store_id), "--start", PERIOD[0], "--end", PERIOD[1],
                           "--inline")  # fmt: skip
        assert f"job {last_line(result)} completed" in result.stdout
        shown = as_json(
            storesync(
                env,
                "cache",
                "show",
                str(store_id),
                "--start",
                PERIOD[0],
                "--end",
                PERIOD[1],
                "--json",
            )
        )
        assert shown["store_id"] == store_id
        assert (shown["period_start"], shown["period_end"]) == PERIOD
        assert shown["meta"]["stale"] is False and shown["synced_at"]
        assert_matches_truth(shown, truth_document(simulator, shop, *PERIOD))
        assert shown["currency"] == shown["shopify"]["currency"]


def test_one_job_while_queued_and_the_cache_answers_after(
    env: dict[str, str], simulator: SimulatorProcess, tmp_path: Path
) -> None:
    ids = add_stores(env, simulator)
    store_id = next(iter(ids.values()))
    first = last_line(
        storesync(env, "sync", str(store_id), "--start", PERIOD[0], "--end", PERIOD[1])
    )
    second = storesync(env, "sync", str(store_id), "--start", PERIOD[0], "--end", PERIOD[1])
    assert last_line(second) == first
    assert "already queued" in second.stdout
    assert len(as_json(storesync(env, "jobs", "--json"))) == 1

    worker = start_worker(env, "--no-scheduler", log=tmp_path / "worker.log")
    try:
        waited = storesync(env, "sync", str(store_id), "--start", PERIOD[0], "--end", PERIOD[1],
                           "--wait")  # fmt: skip
    finally:
        stop(worker)
    assert last_line(waited) == first  # the same job, followed to its end
    assert f"job {first} completed" in waited.stdout
    assert job_of(env, int(first))["status"] == "completed"

    again = storesync(env, "sync", str(store_id), "--start", PERIOD[0], "--end", PERIOD[1])
    assert "fresh in the cache" in again.stdout
    assert len(as_json(storesync(env, "jobs", "--json"))) == 1  # no new job


def test_worker_once_drains_the_queue_and_exits_zero(
    env: dict[str, str], simulator: SimulatorProcess, tmp_path: Path
) -> None:
    ids = add_stores(env, simulator)
    for store_id in ids.values():
        storesync(env, "sync", str(store_id), "--start", PERIOD[0], "--end", PERIOD[1])
    worker = start_worker(env, "--once", "--concurrency", "2", log=tmp_path / "worker.log")
    assert worker.wait(180) == 0
    statuses = [j["status"] for j in as_json(storesync(env, "jobs", "--json"))]
    assert statuses == ["completed"] * len(ids)
    rows = as_json(storesync(env, "cache", "list", "--json"))
    assert len(rows) == 2 * len(ids)  # shopify + klaviyo per store


def test_kill_9_mid_job_resumes_after_the_last_checkpoint(
    env: dict[str, str], simulator: SimulatorProcess, tmp_path: Path
) -> None:
    # Slow every call down so the job is still running when it is killed.
    simulator.post("/_sim/config", {"latency": {"fixed_ms": 150}})
    env = {**env, "STORESYNC_SYNC_CHUNK_DAYS": "7", "STORESYNC_LEASE_SECONDS": "2"}
    ids = add_stores(env, simulator)
    shop, store_id = next(iter(ids.items()))
    start, end = "2026-06-01", "2026-07-30"  # 60 days: 9 chunks of 7 days
    job_id = int(last_line(storesync(env, "sync", str(store_id), "--start", start, "--end", end)))
    first = start_worker(env, "--no-scheduler", log=tmp_path / "w1.log")

    def chunks_done() -> int:
        progress = job_of(env, job_id)["progress"] or {}
        return int(progress.get("chunks_done", 0))

    wait_for(lambda: chunks_done() >= 2, timeout=120, what="two finished chunks")
    first.kill()  # kill -9: no chance to hand the job back
    first.wait()
    killed_at = time.time()
    finished_before_kill = chunks_done()
    assert job_of(env, job_id)["status"] == "processing"

    second = start_worker(env, "--no-scheduler", log=tmp_path / "w2.log")
    try:
        wait_for(
            lambda: job_of(env, job_id)["status"] == "completed", timeout=180, what="completion"
        )
    finally:
        stop(second)
    job = job_of(env, job_id)
    assert job["retry_count"] == 1  # the lapsed lease counted one attempt

    # The simulator's log: no finished chunk was fetched again after the kill.
    chunk_starts = sorted({r["created_at_min"] for r in simulator.requests(provider="shopify")
                           if r["created_at_min"]})  # fmt: skip
    assert len(chunk_starts) == 9
    for bound in chunk_starts[:finished_before_kill]:
        later = [r for r in simulator.requests(provider="shopify")
                 if r["created_at_min"] == bound and r["time"] > killed_at]  # fmt: skip
        assert later == [], f"chunk starting {bound} was fetched again after the kill"
    events = [e["kind"] for e in as_json(storesync(env, "logs", str(job_id), "--json"))]
    assert "rescued" in events and "resumed" in events and events[-1] == "completed"

    shown = as_json(storesync(env, "cache", "show", str(store_id), "--start", start, "--end", end,
                              "--json"))  # fmt: skip
    assert_matches_truth(shown, truth_document(simulator, shop, start, end))
    rows = as_json(storesync(env, "cache", "list", "--json"))
    assert sorted(r["data_type"] for r in rows) == ["klaviyo", "shopify"]


def test_sigterm_hands_the_job_back_without_an_attempt(
    env: dict[str, str], simulator: SimulatorProcess, tmp_path: Path
) -> None:
    simulator.post("/_sim/config", {"latency": {"fixed_ms": 200}})
    env = {**env, "STORESYNC_SHUTDOWN_GRACE_SECONDS": "0.5", "STORESYNC_SYNC_CHUNK_DAYS": "7"}
    ids = add_stores(env, simulator)
    store_id = next(iter(ids.values()))
    job_id = int(last_line(storesync(env, "sync", str(store_id), "--start", "2026-05-01",
                                     "--end", "2026-06-30")))  # fmt: skip
    worker = start_worker(env, "--no-scheduler", log=tmp_path / "w1.log")
    wait_for(lambda: job_of(env, job_id)["status"] == "processing", timeout=60, what="start")
    assert stop(worker, signal.SIGTERM) == 0
    job = job_of(env, job_id)
    assert (job["status"], job["retry_count"]) == ("queued", 0)
    kinds = [e["kind"] for e in as_json(storesync(env, "logs", str(job_id), "--json"))]
    assert kinds[-1] == "released"

    simulator.post("/_sim/config", {"latency": {"fixed_ms": 0}})
    finisher = start_worker(env, "--once", log=tmp_path / "w2.log")
    assert finisher.wait(120) == 0
    assert job_of(env, job_id)["status"] == "completed"


def test_a_rejected_token_fails_at_once_and_keeps_the_klaviyo_data(
    env: dict[str, str], simulator: SimulatorProcess, tmp_path: Path
) -> None:
    ids = add_stores(env, simulator)
    shop, store_id = next(iter(ids.items()))
    simulator.post("/_sim/config", {"stores": {shop: {"token_revoked": True}}})
    result = storesync(env, "sync", str(store_id), "--start", PERIOD[0], "--end", PERIOD[1],
                       "--inline", check=False)  # fmt: skip
    assert result.returncode == 1
    assert "the Shopify access token was rejected" in result.stderr
    job = as_json(storesync(env, "jobs", "--json"))[0]
    assert job["status"] == "failed" and job["retry_count"] == 1
    rows = as_json(storesync(env, "cache", "list", "--json"))
    assert [r["data_type"] for r in rows] == ["klaviyo"]
    graphql_calls = simulator.requests(provider="shopify", account=shop)
    assert [c["status"] for c in graphql_calls] == [401]  # no retries of a permanent error


def test_a_running_job_is_cancelled_by_its_worker(
    env: dict[str, str], simulator: SimulatorProcess, tmp_path: Path
) -> None:
    simulator.post("/_sim/config", {"latency": {"fixed_ms": 200}})
    env = {**env, "STORESYNC_SYNC_CHUNK_DAYS": "7", "STORESYNC_LEASE_SECONDS": "1.5"}
    ids = add_stores(env, simulator, via_cli=False)
    store_id = next(iter(ids.values()))
    job_id = int(last_line(storesync(env, "sync", str(store_id), "--start", "2026-04-01",
                                     "--end", "2026-06-30")))  # fmt: skip
    worker = start_worker(env, "--no-scheduler", log=tmp_path / "worker.log")
    try:
        wait_for(lambda: job_of(env, job_id)["status"] == "processing", timeout=60, what="start")
        asyncio.run(_cancel(env["STORESYNC_DATABASE_URL"], job_id))
        wait_for(lambda: job_of(env, job_id)["status"] == "cancelled", timeout=30, what="cancel")
    finally:
        assert stop(worker) == 0
    kinds = [e["kind"] for e in as_json(storesync(env, "logs", str(job_id), "--json"))]
    assert kinds[-2:] == ["cancel", "cancelled"] or kinds[-1] == "cancelled"
    assert "completed" not in kinds
    assert as_json(storesync(env, "cache", "list", "--json")) == []


async def _cancel(db_url: str, job_id: int) -> None:
    settings = Settings(database_url=db_url)
    database = connect(settings)
    try:
        job = await JobQueue(database, settings).cancel(job_id)
        assert job.cancel_requested and job.status.value == "processing"
    finally:
        await database.dispose()


def test_klaviyo_figures_are_kept_while_the_daily_budget_paces_them(
    env: dict[str, str], simulator: SimulatorProcess
) -> None:
    # Shopify's figures of a recent period expire after a second; Klaviyo's stay fresh for as
    # long as the daily report budget needs (about 43 minutes for a store's 3 periods).
    env = {**env, "STORESYNC_CACHE_TTL_SECONDS": "1"}
    ids = add_stores(env, simulator, via_cli=False)
    shop, store_id = next(iter(ids.items()))
    end = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86_400))
    start = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 3 * 86_400))
    sync = ["sync", str(store_id), "--start", start, "--end", end, "--inline"]

    def reports() -> int:
        return len([r for r in simulator.requests(provider="klaviyo") if "report" in r["endpoint"]])

    def synced_at() -> dict[str, str]:
        rows = as_json(storesync(env, "cache", "list", "--json"))
        return {r["data_type"]: r["synced_at"] for r in rows}

    storesync(env, *sync)
    first, spent = synced_at(), reports()
    assert spent >= 2  # a campaign and a flow report
    time.sleep(1.2)  # Shopify's figures expire
    again = last_line(storesync(env, *sync))
    second = synced_at()
    assert reports() == spent  # no report call spent on figures still fresh
    assert second["shopify"] > first["shopify"] and second["klaviyo"] == first["klaviyo"]
    kept = [
        e for e in as_json(storesync(env, "logs", again, "--json")) if e["kind"] == "klaviyo-kept"
    ]
    assert len(kept) == 1 and "no report calls spent" in kept[0]["message"]

    storesync(env, *sync, "--force")  # force bypasses the pacing
    assert reports() >= spent + 2
    assert synced_at()["klaviyo"] > first["klaviyo"]
    assert shop in {r["account"] for r in simulator.requests(provider="shopify")}

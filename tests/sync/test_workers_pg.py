"""Several workers on one PostgreSQL: the limits hold across processes, one scheduler runs,
and a database restart loses no job."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from storesync.simulator import SimStore
from tests.cli.helpers import as_json, storesync
from tests.harness import (
    SimulatorProcess,
    fast_stores,
    free_port,
    max_overlap,
    read_jobs,
    restart_postgres,
    start_worker,
    stop,
    wait_for,
)
from tests.sync.conftest import add_stores

pytestmark = [pytest.mark.parametrize("backend", ["postgresql"], indirect=True), pytest.mark.slow]

PERIOD = ("2026-07-01", "2026-07-31")


@pytest.fixture
def sim_stores() -> list[SimStore]:
    return fast_stores(12, orders_per_day=10)


def shop_intervals(requests: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    spans: dict[str, list[tuple[float, float]]] = {}
    for r in requests:
        if r["account"]:
            spans.setdefault(r["account"], []).append(
                (r["time"], r["time"] + r["duration_ms"] / 1000)
            )
    return spans


def test_two_workers_hold_the_global_and_per_store_limits_with_one_scheduler(
    env: dict[str, str], simulator: SimulatorProcess, tmp_path: Path
) -> None:
    simulator.post("/_sim/config", {"latency": {"fixed_ms": 40, "jitter_ms": 40}})
    env = {**env, "STORESYNC_MAX_CONCURRENT_JOBS": "3", "STORESYNC_SCHEDULER_INTERVAL_SECONDS": "1"}
    ids = add_stores(env, simulator, via_cli=False)
    secrets = [s["shopify_token"] for s in simulator.get("/_sim/stores")["stores"]]
    port = free_port()
    workers = [
        start_worker(env, "--concurrency", "3", "--log-json", "--metrics-port", str(port),
                     log=tmp_path / "w1.log"),
        start_worker(env, "--concurrency", "3", "--log-json", log=tmp_path / "w2.log"),
    ]  # fmt: skip
    try:

        def both_alive() -> list[dict[str, Any]] | None:
            live = as_json(storesync(env, "stats", "--json"))["workers"]
            return live if len(live) == 2 else None

        live = wait_for(both_alive, timeout=60, what="two live workers")
        wait_for(
            lambda: (
                sum(
                    w["is_scheduler"] for w in as_json(storesync(env, "stats", "--json"))["workers"]
                )
                == 1
            ),
            timeout=30,
            what="one scheduler",
        )
        assert {w["pid"] for w in live} == {w.pid for w in workers}

        # Users ask for a month of every store on top of the scheduler's refreshes.
        for store_id in ids.values():
            storesync(env, "sync", str(store_id), "--start", PERIOD[0], "--end", PERIOD[1])

        def all_done() -> bool:
            jobs = read_jobs(env["STORESYNC_DATABASE_URL"])
            return len(jobs) >= 4 * len(ids) and all(j["status"] == "completed" for j in jobs)

        wait_for(all_done, timeout=240, interval=1, what="every job completed")
        jobs = as_json(storesync(env, "jobs", "--json", "--limit", "1000"))
        scheduled = [j for j in jobs if j["reason"] == "schedule"]
        # today, last 7 and last 30 days of each store: scheduled once, not once per worker.
        assert len(scheduled) == 3 * len(ids)
        assert len({(j["store_id"], j["period_start"], j["period_end"]) for j in scheduled}) == len(
            scheduled
        )

        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'storesync_jobs_total{outcome="completed"}' in metrics
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0]

    # From the database: never more than 3 jobs processing, never 2 of one store.
    jobs = as_json(storesync(env, "jobs", "--json", "--limit", "1000"))
    spans = [(datetime.fromisoformat(j["started_at"]).timestamp(),
              datetime.fromisoformat(j["completed_at"]).timestamp()) for j in jobs]  # fmt: skip
    assert max_overlap(spans) <= 3
    # From the simulator: never more than 3 stores' syncs in flight, never 2 for one store.
    shopify = shop_intervals(simulator.requests(provider="shopify"))
    assert len(shopify) == len(ids)
    for shop, intervals in shopify.items():
        assert max_overlap(intervals) == 1, f"two Shopify calls at once for {shop}"
    busiest = max_overlap([iv for ivs in shopify.values() for iv in ivs])
    assert busiest <= 3

    # Logs: one JSON object per line, no credential anywhere.
    for name in ("w1.log", "w2.log"):
        lines = (tmp_path / name).read_text().splitlines()
        assert lines, f"{name} is empty"
        for line in lines:
            json.loads(line)
        text = "\n".join(lines)
        assert not any(secret in text for secret in secrets)


@pytest.mark.serial
def test_postgres_restarted_while_workers_run_loses_no_job(
    env: dict[str, str], simulator: SimulatorProcess, tmp_path: Path
) -> None:
    simulator.post("/_sim/config", {"latency": {"fixed_ms": 60}})
    env = {**env, "STORESYNC_MAX_CONCURRENT_JOBS": "3", "STORESYNC_SYNC_CHUNK_DAYS": "7"}
    ids = add_stores(env, simulator, via_cli=False)
    job_ids = [
        int(
            storesync(env, "sync", str(s), "--start", PERIOD[0], "--end", PERIOD[1]).stdout.split()[
                -1
            ]
        )
        for s in ids.values()
    ]
    workers = [start_worker(env, "--no-scheduler", log=tmp_path / f"w{i}.log") for i in (1, 2)]
    try:
        wait_for(
            lambda: any(
                j["status"] == "completed" for j in as_json(storesync(env, "jobs", "--json"))
            ),
            timeout=120,
            what="a first completed job",
        )
        restart_postgres()

        def all_completed() -> bool:
            try:
                jobs = read_jobs(env["STORESYNC_DATABASE_URL"])
            except Exception:
                return False  # the database is still coming back
            return all(j["status"] == "completed" for j in jobs)

        wait_for(all_completed, timeout=300, interval=1, what="every job completed")
        assert all(w.poll() is None for w in workers), "a worker died with the database"
    finally:
        for w in workers:
            stop(w)
    jobs = as_json(storesync(env, "jobs", "--json", "--limit", "100"))
    assert sorted(j["id"] for j in jobs) == sorted(job_ids)
    rows = as_json(storesync(env, "cache", "list", "--json", "--limit", "1000"))
    assert len(rows) == 2 * len(ids)
    assert len(
        {(r["store_id"], r["data_type"], r["period_start"], r["period_end"]) for r in rows}
    ) == len(rows)

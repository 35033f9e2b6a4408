"""Drill: workers die with kill -9, every few seconds, while 200 jobs run.

Whatever a dead worker held comes back to the queue once its lease lapses (seconds here) and
another worker finishes it; replacements start so the fleet stays at four.
"""

from __future__ import annotations

import random
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from storesync.simulator import SimStore
from tests.drills.checks import assert_drill_invariants
from tests.drills.support import (
    LEASE_SECONDS,
    Key,
    all_finished,
    enqueue,
    fleet,
    query,
    secrets_of,
)
from tests.harness import SimulatorProcess, fast_stores

pytestmark = pytest.mark.slow

STORES = 40
PERIODS_PER_STORE = 5
#: A higher limit than the other drills' (no API shares the database's connections here),
#: so that 200 jobs take well under a minute; still below the fleet's 4 × 5 slots.
LIMIT = 16


@pytest.fixture
def sim_stores() -> list[SimStore]:
    return fast_stores(STORES, orders_per_day=3)


def periods(count: int) -> list[tuple[date, date]]:
    """``count`` three-day periods, all settled (ended weeks ago: cached for good)."""
    last = date.today() - timedelta(days=20)
    return [(last - timedelta(days=3 * n + 2), last - timedelta(days=3 * n)) for n in range(count)]


def test_kill_9_of_random_workers_while_200_jobs_run(
    env: dict[str, str],
    db_url: str,
    simulator: SimulatorProcess,
    store_ids: dict[str, int],
    tmp_path: Path,
) -> None:
    windows = periods(PERIODS_PER_STORE)
    keys: list[Key] = [(store, *window) for store in store_ids.values() for window in windows]
    assert len(set(enqueue(env, keys))) == STORES * PERIODS_PER_STORE == 200
    env = {**env, "STORESYNC_MAX_CONCURRENT_JOBS": str(LIMIT)}
    rng = random.Random(9)
    with fleet(env, tmp_path, concurrency=5) as workers:
        deadline = time.monotonic() + 150
        while True:
            time.sleep(rng.uniform(4.0, 6.0))  # the fault's rhythm, not a wait for a result
            if all_finished(db_url):
                break
            assert time.monotonic() < deadline, "the jobs did not finish in 150 s"
            workers.kill_one(rng)
        codes = workers.stop()
    assert codes == [0, 0, 0, 0], "a surviving worker did not stop cleanly"

    replay = assert_drill_invariants(
        db_url, simulator, keys, workers.logs, secrets_of(simulator, env), limit=LIMIT
    )
    assert replay.peak == LIMIT, "the workers never contended for the slots"
    statuses = query(db_url, "SELECT status, count(*) AS n FROM sync_queue GROUP BY status")
    assert {r["status"]: r["n"] for r in statuses}.get("completed", 0) >= 190

    # The kills hit running jobs, and every job a killed worker held was taken back within a
    # lease and a rescue round of the kill.
    assert replay.rescues, "no kill caught a worker with a job: the drill proved nothing"
    killed_at = {pid: at for at, pid in workers.killed}
    for attempt in replay.attempts:
        pid = int(attempt.worker_id.split(":")[1])  # host:pid:suffix
        if pid not in killed_at or attempt.ended["at"].timestamp() < killed_at[pid]:
            continue  # its worker lived, or the attempt ended before the kill
        delay = attempt.ended["at"].timestamp() - killed_at[pid]
        assert attempt.rescued, f"job {attempt.job_id} of a dead worker ended: {attempt.ended}"
        assert delay < LEASE_SECONDS * 1.5 + 3, f"job {attempt.job_id} rescued {delay:.1f} s late"

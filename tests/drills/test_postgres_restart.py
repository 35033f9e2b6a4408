"""Drill: PostgreSQL goes down in the middle of the work, for longer than a lease, and comes
back.

Every worker rides it out (none exits), the jobs they held are renewed or taken back, and
every job ends; a worker whose job was taken back while it could not reach the database
drops its work rather than syncing the store beside the job's new owner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.drills.checks import assert_drill_invariants
from tests.drills.support import (
    LEASE_SECONDS,
    Key,
    all_finished,
    enqueue,
    fleet,
    jobs,
    secrets_of,
)
from tests.harness import SimulatorProcess, restart_postgres, wait_for

pytestmark = [pytest.mark.serial, pytest.mark.slow]


def unless_unreachable(predicate: Callable[[], bool]) -> Callable[[], bool]:
    """``predicate``, or False while the database does not answer yet."""

    def check() -> bool:
        try:
            return predicate()
        except Exception:  # the database is still coming back
            return False

    return check


def test_postgres_down_longer_than_a_lease_in_the_middle(
    env: dict[str, str],
    db_url: str,
    simulator: SimulatorProcess,
    store_ids: dict[str, int],
    tmp_path: Path,
) -> None:
    last = date.today() - timedelta(days=20)
    windows = [(last - timedelta(days=7 * n + 6), last - timedelta(days=7 * n)) for n in range(3)]
    keys: list[Key] = [(store, *window) for store in store_ids.values() for window in windows]
    job_ids = enqueue(env, keys)
    with fleet(env, tmp_path) as workers:
        wait_for(
            lambda: sum(j["status"] == "completed" for j in jobs(db_url)) >= len(keys) // 4,
            timeout=60,
            what="a quarter of the jobs completed",
        )
        assert any(j["status"] == "processing" for j in jobs(db_url))
        outage = time.monotonic()
        restart_postgres(down_seconds=LEASE_SECONDS + 1)
        assert time.monotonic() - outage > LEASE_SECONDS
        wait_for(
            unless_unreachable(lambda: all_finished(db_url)),
            timeout=120,
            interval=0.5,
            what="every job, after the restart",
        )
        assert [w.poll() for w in workers.workers] == [None] * 4, "a worker died with the database"
        assert workers.stop() == [0, 0, 0, 0]

    assert sorted(j["id"] for j in jobs(db_url)) == sorted(job_ids)
    assert_drill_invariants(db_url, simulator, keys, workers.logs, secrets_of(simulator, env))

"""Drill: Shopify and Klaviyo stall (connections accepted, nothing answered) for longer than
the client's timeout, then recover.

A stalled call must end at the client's timeout and be retried, the workers must keep their
leases meanwhile (a slow provider is not a dead worker), and every job completes once the
providers answer again.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.drills.checks import assert_drill_invariants
from tests.drills.support import (
    HTTP_TIMEOUT_SECONDS,
    LEASE_SECONDS,
    Key,
    all_finished,
    enqueue,
    fleet,
    jobs,
    query,
    secrets_of,
)
from tests.harness import SimulatorProcess, wait_for

pytestmark = pytest.mark.slow

#: Longer than the client's timeout and than a lease: neither may be what ends the stall.
STALL_SECONDS = 4.5


def test_providers_stalling_past_the_client_timeout_then_recovering(
    env: dict[str, str],
    db_url: str,
    simulator: SimulatorProcess,
    store_ids: dict[str, int],
    tmp_path: Path,
) -> None:
    assert STALL_SECONDS > max(HTTP_TIMEOUT_SECONDS * 2, LEASE_SECONDS)
    last = date.today() - timedelta(days=30)
    windows = [(last - timedelta(days=13), last - timedelta(days=7)), (last - timedelta(6), last)]
    keys: list[Key] = [(store, *window) for store in store_ids.values() for window in windows]
    enqueue(env, keys)
    with fleet(env, tmp_path) as workers:
        wait_for(
            lambda: sum(j["status"] == "completed" for j in jobs(db_url)) >= 3,
            timeout=60,
            what="the first completed jobs",
        )
        simulator.post("/_sim/config", {"faults": {"stall": True}})
        stalled_at = time.time()
        time.sleep(STALL_SECONDS)  # the length of the outage, not a wait for a result
        simulator.post("/_sim/config", {"faults": {"stall": False}})
        recovered_at = time.time()
        wait_for(lambda: all_finished(db_url), timeout=90, interval=0.5, what="every job")
        assert workers.stop() == [0, 0, 0, 0]

    replay = assert_drill_invariants(
        db_url, simulator, keys, workers.logs, secrets_of(simulator, env)
    )
    assert {j["status"] for j in jobs(db_url)} == {"completed"}, "a stall is not a failure"
    assert replay.rescues == [], "a worker lost its lease while only the providers stalled"

    # Calls caught by the stall were given up at the client's timeout (the simulator saw the
    # connection close, no answer sent), not held for the whole stall.
    caught = [
        r
        for r in simulator.requests()
        if stalled_at <= r["time"] < recovered_at - 2 * HTTP_TIMEOUT_SECONDS
    ]
    assert caught, "no call reached the simulator during the stall"
    assert all(r["status"] is None for r in caught), "a stalled call was answered"
    longest = max(r["duration_ms"] for r in caught) / 1000
    # (The simulator's clock starts a little after the client's, once the request arrived.)
    assert 0.9 * HTTP_TIMEOUT_SECONDS <= longest < 2 * HTTP_TIMEOUT_SECONDS + 1
    timed_out = query(
        db_url,
        "SELECT count(*) AS n FROM sync_job_events "
        "WHERE kind = 'retried' AND message LIKE '%the request timed out%'",
    )
    assert timed_out[0]["n"] >= len({r["account"] for r in caught})

"""Drill: 1,000 requests for the same 10 store-periods hit the HTTP API at once.

Dashboards asking for a period nobody has cached, and users pressing "sync", all together,
while four workers run. Each period is synced once: a caller gets the period's one job while
it waits or runs, and once it completed, a read gets the cache and a sync gets that job again
(a sync costs two of the Klaviyo account's 225 daily report calls; only ``force`` repeats it).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from storesync.simulator import SimStore
from tests.drills.checks import assert_drill_invariants, assert_one_job_at_a_time
from tests.drills.support import (
    Call,
    Key,
    all_finished,
    api_server,
    api_token,
    fleet,
    job_key,
    jobs,
    secrets_of,
    storm,
)
from tests.harness import SimulatorProcess, fast_stores, wait_for

pytestmark = pytest.mark.slow

REQUESTS = 1_000
SYNC_SHARE = 0.3  # the rest are dashboard reads


@pytest.fixture
def sim_stores() -> list[SimStore]:
    return fast_stores(5, orders_per_day=4)


def request(kind: str, key: Key) -> Call:
    store, start, end = key
    dates = {"start": start.isoformat(), "end": end.isoformat()}
    if kind == "sync":
        return Call("POST", f"/api/stores/{store}/sync", {"json": dates}, tag=(kind, key))
    return Call("GET", f"/api/stores/{store}/dashboard", {"params": dates}, tag=(kind, key))


def test_a_burst_of_1000_duplicate_requests_for_10_store_periods(
    env: dict[str, str],
    db_url: str,
    simulator: SimulatorProcess,
    store_ids: dict[str, int],
    tmp_path: Path,
) -> None:
    last = date.today() - timedelta(days=40)
    windows = [(last - timedelta(days=20), last - timedelta(days=10)), (last - timedelta(9), last)]
    keys: list[Key] = [(store, *window) for store in store_ids.values() for window in windows]
    assert len(keys) == 10
    calls = [
        request("sync" if n < SYNC_SHARE * REQUESTS / len(keys) else "read", key)
        for key in keys
        for n in range(REQUESTS // len(keys))
    ]
    random.Random(1000).shuffle(calls)
    token = api_token(env)
    api_log = tmp_path / "api.log"
    # One account sends the whole burst: its requests-a-minute limit (600 by default) is
    # another test's subject (tests/api/test_account_limits.py); here the queue's de-duplication is.
    api_env = {**env, "STORESYNC_API_REQUESTS_PER_MINUTE": "0"}
    with fleet(env, tmp_path) as workers, api_server(api_env, api_log) as url:
        answers = storm(url, calls, token=token)
        wait_for(lambda: all_finished(db_url), timeout=90, interval=0.5, what="every job")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
            dashboards = [
                http.get(
                    f"/api/stores/{store}/dashboard",
                    params={"start": start.isoformat(), "end": end.isoformat()},
                )
                for store, start, end in keys
            ]
        assert workers.stop() == [0, 0, 0, 0]

    named: dict[int, list[Call]] = defaultdict(list)  # job id → the answers naming it
    for answer in answers:
        assert answer.response is not None
        kind, (store, start, end) = answer.tag
        body: dict[str, Any] = answer.response.json()
        if answer.response.status_code == 200:
            assert kind == "read" and body["meta"]["stale"] is False
            continue
        assert answer.response.status_code == 202, body
        assert (body["store_id"], body["period_start"], body["period_end"]) == (
            store,
            start.isoformat(),
            end.isoformat(),
        )
        named[body["id"]].append(answer)
    by_key: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs(db_url):
        by_key[job_key(job)].append(job)
    assert set(by_key) == set(keys)
    assert set(named) == {j["id"] for js in by_key.values() for j in js}, "a job nobody got"
    assert_one_job_at_a_time(db_url)
    # A period is synced again only when a request for it read the cache before the previous
    # sync completed; a request sent after that gets the cache, or (a sync) the completed job.
    for key, synced in by_key.items():
        for before, after in pairwise(sorted(synced, key=lambda j: j["id"])):
            if before["status"] == "failed":
                continue  # a sync after a failure retries at once, by design
            finished = before["completed_at"].timestamp()
            assert any(a.sent_at < finished for a in named[after["id"]]), (
                f"job {after['id']} synced {key} again after job {before['id']} completed"
            )

    assert [d.status_code for d in dashboards] == [200] * len(keys)
    assert all(d.json()["meta"]["stale"] is False for d in dashboards)
    assert_drill_invariants(
        db_url,
        simulator,
        keys,
        [*workers.logs, api_log],
        secrets_of(simulator, env, token),
    )

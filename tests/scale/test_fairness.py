"""Fairness at scale, on PostgreSQL: users' requests go ahead of queued scheduled work, aging
keeps scheduled work from starving, and the limits hold.

One run of ``benchmarks/scale.py``'s scenario, smaller: 15 stores with wide provider limits and
80 ms added to every provider answer (a sync lasts about half a second or more, whatever the
machine, and never waits for a budget), two worker processes and a global limit of 2, so that
the scheduler's 45 refreshes form a backlog of ten seconds or more (8 s on a quiet machine with
40 ms). Aging is sped up to a point every 0.05 s: a scheduled refresh out-ranks a user's request
queued more than 5 s (100 points) after it, well before the backlog is served.

Users ask through the API: a burst right after the scheduler has queued its refreshes, then
one request every 0.7 s for 12.6 s. The burst ranks above the whole backlog; the requests that
come more than 8 s after the backlog rank below all of it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from benchmarks.harness import drop, recreate
from benchmarks.scale import Outcome, Scenario, report, run
from storesync.audit import JobTrace
from storesync.queue import Priority
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.slow

AGING = 0.05  # seconds per priority point
USER_POINTS = Priority.USER - Priority.SCHEDULE  # 100: a user's head start
BURST = 4
SCENARIO = Scenario(
    stores=15,
    workers=2,
    max_concurrent_jobs=2,
    user_times=(0.0,) * BURST + tuple(0.7 * i for i in range(1, 19)),
    priority_aging_seconds=AGING,
    wide_limits=True,
    order_slack=2.0,  # two workers of one job each: their statements commit at once
    latency_ms=80,
    timeout=150,
)


@pytest.fixture(scope="module")
def outcome(pg_template: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """The scenario, run once for this module's tests on a fresh PostgreSQL database."""
    if pg_template is None:
        pytest.skip("PostgreSQL is not reachable (it is required, and runs, in CI)")
    name = f"storesync_scale_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(recreate(PG_ADMIN_URL, name, template=pg_template))
    try:
        result = asyncio.run(run(SCENARIO, url, tmp_path_factory.mktemp("scale")))
        print(report(result))  # shown with -s, and for a failing test
        yield result
    finally:
        asyncio.run(drop(PG_ADMIN_URL, name))


def jobs(outcome: Outcome, reason: str) -> list[JobTrace]:
    return [j for j in outcome.trace.jobs.values() if j.reason == reason]


def test_every_job_completed_within_the_limits(outcome: Outcome) -> None:
    assert outcome.statuses == {"completed": SCENARIO.scheduled_jobs + len(SCENARIO.user_times)}
    assert outcome.limits.violations == []
    assert outcome.limits.peak == SCENARIO.max_concurrent_jobs  # the limit was what held them
    assert outcome.limits.peak_per_store == 1
    assert outcome.providers.over_limit == []
    assert outcome.providers.refused == []


def test_every_claim_took_the_best_job_waiting(outcome: Outcome) -> None:
    # The highest priority plus aging, among jobs due with their store free for a second.
    assert outcome.passed == []


def test_users_requests_start_ahead_of_the_queued_backlog(outcome: Outcome) -> None:
    scheduled = jobs(outcome, "schedule")
    out_ranked = timedelta(seconds=AGING * USER_POINTS)
    burst = sorted(jobs(outcome, "user"), key=lambda j: j.queued_at)[:BURST]
    for job in burst:
        # The scheduled jobs still waiting when it came that it out-ranked (queued less than
        # 100 points of aging before it): it must start ahead of them, but for the claims
        # under way when it came and those made while its store was busy with a refresh.
        behind = [
            s
            for s in scheduled
            if s.claims[0].at > job.queued_at and job.queued_at - s.queued_at < out_ranked
        ]
        assert len(behind) >= SCENARIO.scheduled_jobs // 2, "the burst must meet the backlog"
        assert outcome.started_ahead[job.id] >= len(behind) - 3 * SCENARIO.max_concurrent_jobs


def test_aging_keeps_the_scheduled_refreshes_from_starving(outcome: Outcome) -> None:
    scheduled = jobs(outcome, "schedule")
    queued = max(j.queued_at for j in scheduled)
    out_ranked = queued + timedelta(seconds=AGING * USER_POINTS + 1)
    late = [j for j in jobs(outcome, "user") if j.queued_at > out_ranked]
    assert len(late) >= 5, "the scenario must have requests that rank below the backlog"
    last_scheduled_start = max(j.claims[0].at for j in scheduled)
    assert min(j.queued_at for j in late) < last_scheduled_start, "and come while it waits"
    # They came faster than the workers serve, yet the backlog was not held back for them:
    # it was served first (but where a backlog job's store was busy with another of its jobs).
    last_scheduled = max(j.claims[0].seq for j in scheduled)
    late_claims = sorted(j.claims[0].seq for j in late)
    assert late_claims[len(late_claims) // 2] > last_scheduled
    assert late_claims[-1] > last_scheduled

"""Every request the Klaviyo connector sends during real syncs is one the pinned revision defines.

The syncs run against the in-process simulator, whose request log keeps each request's
method, path, raw query, revision header and report body; each is checked against the
official SDK of the revision (:mod:`.klaviyo_oracle`). The syncs cover accounts, metrics,
campaigns of every channel over two pages, flows, both values reports over several pages, and
a 429 answered and retried.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from storesync.periods import Period
from storesync.settings import SUPPORTED_KLAVIYO_REVISIONS, Settings
from storesync.simulator.klaviyo import REVISION as SIMULATOR_REVISION

from ..helpers import NY, SYDNEY, Rig, truth
from .klaviyo_oracle import SDK_REVISION, check_request

PERIOD = Period(date(2025, 6, 1), date(2025, 7, 31))


def test_one_revision_is_pinned_everywhere() -> None:
    assert Settings().klaviyo_revision == SIMULATOR_REVISION == SDK_REVISION == "2026-10-15"
    assert SUPPORTED_KLAVIYO_REVISIONS == (SDK_REVISION,)


def test_an_unsupported_revision_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="'2025-10-15' is not a Klaviyo API revision"):
        Settings(klaviyo_revision="2025-10-15")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORESYNC_")}
    env |= {"STORESYNC_DATA_DIR": str(tmp_path), "STORESYNC_KLAVIYO_REVISION": "2026-07-15"}
    worker = subprocess.run(
        [sys.executable, "-m", "storesync", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 2
    assert "STORESYNC_KLAVIYO_REVISION" in worker.stderr
    assert "'2026-07-15' is not a Klaviyo API revision storesync supports; use 2026-10-15" in (
        worker.stderr
    )


async def test_every_request_of_real_syncs_is_defined_by_the_revision(rig: Rig) -> None:
    sim = rig.sim
    assert sim is not None
    # Both reports take several pages; one campaigns call a second (the connector is told
    # a hundred) makes the second page of campaigns a genuine 429, retried after
    # Retry-After.
    sim.configure(
        {"report_page_size": 5, "klaviyo_limits": {"campaigns": {"burst": 1, "steady": 6000}}}
    )
    for shop in (NY, SYDNEY):
        tz = ZoneInfo(sim.store(shop).timezone)
        figures = await rig.klaviyo(shop).fetch_performance(PERIOD, tz)
        assert figures == (await truth(rig, shop, PERIOD))[1]  # still exact
        channels = {c.channel for c in figures.campaigns}
        assert channels == {"email", "sms"}  # campaigns of every channel, named
        assert all(c.name != c.id for c in figures.campaigns)

    records = sim.requests.records(provider="klaviyo")
    problems = [
        f"{r.method} {r.path}?{r.query}: {problem}"
        for r in records
        for problem in check_request(r.method, r.path, r.query, revision=r.revision, body=r.body)
    ]
    assert problems == []

    # What was covered, so that the check above cannot pass by checking nothing.
    endpoints = {r.endpoint for r in records if r.status == 200}
    assert endpoints == {
        "accounts",
        "metrics",
        "campaigns",
        "flows",
        "campaign-values-reports",
        "flow-values-reports",
    }
    paged = {r.endpoint for r in records if "cursor" in r.query and r.status == 200}
    assert paged >= {"campaigns", "campaign-values-reports", "flow-values-reports"}
    throttled = [r for r in records if r.status == 429]
    assert throttled and {r.endpoint for r in throttled} == {"campaigns"}
    assert throttled[0].throttled and "cursor" in throttled[0].query
    retried = [r for r in records if r.time >= throttled[0].time and r.endpoint == "campaigns"]
    assert [r.status for r in retried[:2]] == [429, 200]
    assert dict(parse_qsl(retried[1].query)) == dict(parse_qsl(throttled[0].query))
    assert all(r.body is not None for r in records if r.endpoint.endswith("values-reports"))

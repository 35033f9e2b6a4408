"""The audits find what they must: made-up logs, each breaking one rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from storesync.audit import Event, JobTrace, Trace, passed_over, replay_limits
from storesync.simulator import RequestRecord, SimStore, SimulatorConfig
from storesync.simulator.audit import audit_limits, window_seconds

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Log:
    """A job event log written line by line, as the queue would."""

    def __init__(self) -> None:
        self.jobs: dict[int, JobTrace] = {}
        self.events: list[Event] = []

    def line(self, job: int, second: float, kind: str, *, data: bool = False) -> None:
        event = Event(len(self.events) + 1, job, T0 + timedelta(seconds=second), kind, data)
        self.events.append(event)
        if kind == "claimed":
            self.jobs[job].claims.append(event)

    def queue(self, job: int, store: int, second: float, reason: str = "schedule") -> None:
        priority = 100 if reason == "user" else 0
        self.jobs[job] = JobTrace(
            job, store, date(2026, 3, 1), date(2026, 3, 1), reason, priority, "completed",
            T0 + timedelta(seconds=second), None,
        )  # fmt: skip
        self.line(job, second, "queued")

    @property
    def trace(self) -> Trace:
        return Trace(self.jobs, self.events)


def test_the_replay_follows_the_ids_and_finds_both_limits_broken() -> None:
    log = Log()
    for job, store in ((1, 1), (2, 2), (3, 1)):
        log.queue(job, store, 0)
    log.line(1, 1, "claimed")
    log.line(2, 1, "claimed")
    # A connector's "retried" (with data) does not end the attempt; the queue's does.
    log.line(1, 2, "retried", data=True)
    log.line(3, 1.5, "claimed")  # by its clock before job 1 retried, by its id after
    replay = replay_limits(log.trace, limit=2)
    assert replay.peak == 3 and replay.peak_per_store == 2
    assert replay.violations == [
        "event 7: 3 jobs processing (limit 2)",
        "event 7: store 1 has 2 jobs processing",
        "job 1: its attempt never ended",
        "job 2: its attempt never ended",
        "job 3: its attempt never ended",
    ]

    fine = Log()
    for job in (1, 2):
        fine.queue(job, 1, 0)
    fine.line(1, 1, "claimed")
    fine.line(1, 3, "retried")  # the queue's: back in the queue
    fine.line(2, 2, "claimed")  # by its clock before the retry, by its id after
    fine.line(2, 4, "completed")
    fine.line(1, 5, "claimed")
    fine.line(1, 6, "completed")
    assert replay_limits(fine.trace, limit=1).violations == []


def test_a_claim_that_passes_over_a_better_job_is_found() -> None:
    log = Log()
    log.queue(1, 1, 0)  # scheduled
    log.queue(2, 2, 10, "user")
    log.queue(3, 3, 10.5, "user")  # queued less than the slack before the claim: excused
    log.line(1, 11, "claimed")  # the user's request waited a second, its store free
    found = passed_over(log.trace, aging_seconds=60)
    assert [(p.taken, p.waiting) for p in found] == [(1, 2)]
    assert round(found[0].points, 2) == round(100 - 10 / 60, 2)

    # Aged enough, the scheduled job out-ranks a user's request queued long after it.
    aged = Log()
    aged.queue(1, 1, 0)
    aged.queue(2, 2, 120, "user")
    aged.line(1, 130, "claimed")
    assert passed_over(aged.trace, aging_seconds=1) == []


def test_a_request_whose_store_is_busy_is_not_passed_over() -> None:
    log = Log()
    log.queue(1, 1, 0)
    log.line(1, 1, "claimed")
    log.queue(2, 1, 2, "user")  # its store runs job 1
    log.queue(3, 2, 3)
    log.line(3, 5, "claimed")
    log.line(1, 6, "completed")
    log.line(2, 6.5, "claimed")
    assert passed_over(log.trace, aging_seconds=60) == []
    # A batch claims its jobs at one instant and logs them in any order.
    batch = Log()
    batch.queue(1, 1, 0)
    batch.queue(2, 2, 1, "user")
    batch.line(1, 5, "claimed")
    batch.line(2, 5, "claimed")
    assert passed_over(batch.trace, aging_seconds=60) == []


def record(second: float, provider: str, account: str, **fields: object) -> RequestRecord:
    values = {"duration_ms": 10.0, "status": 200, **fields}
    return RequestRecord(1_800_000_000.0 + second, provider, "POST", "/", account=account, **values)


def test_the_request_log_shows_calls_beyond_a_window_or_the_bucket() -> None:
    shop = SimStore(shop_domain="a.myshopify.com", bucket_size=1000, restore_rate=50)
    config = SimulatorConfig(stores=[shop])
    reports = [
        record(s, "klaviyo", "K1", endpoint=e)
        for s, e in ((0.1, "campaign-values-reports"), (1.2, "flow-values-reports"),
                     (2.3, "campaign-values-reports"))
    ]  # fmt: skip
    pages = [
        record(0, "shopify", shop.shop_domain, requested_cost=1000, actual_cost=1000),
        record(10, "shopify", shop.shop_domain, requested_cost=600, actual_cost=600),
    ]
    audit = audit_limits(sorted([*reports, *pages], key=lambda r: r.time), config)
    assert audit.over_limit == [
        "shopify a.myshopify.com at 1800000010.000: requested 600 with 500.5 points in the bucket",
        "klaviyo K1 reports: 3 calls in the steady window starting at 1800000000 (limit 2)",
    ]
    refused = record(3, "klaviyo", "K1", endpoint="flows", status=429, throttled=True)
    assert audit_limits([refused], config).refused == [refused]


def test_klaviyo_windows_bound_the_last_call() -> None:
    limit = SimulatorConfig().klaviyo_limits.reports  # 1 a second, 2 a minute, 225 a day
    start = 1_800_000_030.0  # half a minute into a window
    assert window_seconds(2, limit, start) == 1.0
    assert window_seconds(6, limit, start) == 90.0  # the third window starts at +90 s

"""What the queue hands out: :class:`Job` snapshots, priorities and reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum, StrEnum
from typing import Any

from storesync.periods import Period


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (JobStatus.QUEUED, JobStatus.PROCESSING)
FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class Reason(StrEnum):
    """Why a job was queued."""

    USER = "user"
    WEBHOOK = "webhook"
    SCHEDULE = "schedule"


class Priority(IntEnum):
    """Default priority per reason: a person waiting beats a webhook beats the scheduler.

    Waiting jobs gain a point every ``priority_aging_seconds`` (one minute by default), so a
    scheduled refresh that has waited 100 minutes competes with a fresh user request and no
    job waits forever.
    """

    SCHEDULE = 0
    WEBHOOK = 50
    USER = 100

    @classmethod
    def for_reason(cls, reason: Reason) -> Priority:
        return {Reason.USER: cls.USER, Reason.WEBHOOK: cls.WEBHOOK}.get(reason, cls.SCHEDULE)


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of one ``sync_queue`` row."""

    id: int
    store_id: int
    status: JobStatus
    priority: int
    reason: Reason
    period_start: date
    period_end: date
    force: bool
    retry_count: int
    queued_at: datetime
    run_after: datetime
    started_at: datetime | None
    completed_at: datetime | None
    heartbeat_at: datetime | None
    lease_expires_at: datetime | None
    worker_id: str | None
    cancel_requested: bool
    error_message: str | None
    progress: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Job:
        values = dict(row)
        values["status"] = JobStatus(values["status"])
        values["reason"] = Reason(values["reason"])
        values["force"] = bool(values["force"])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(**values)

    @property
    def period(self) -> Period:
        return Period(self.period_start, self.period_end)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the shape ``storesync jobs --json`` prints)."""
        return {
            "id": self.id,
            "store_id": self.store_id,
            "status": self.status.value,
            "priority": self.priority,
            "reason": self.reason.value,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "force": self.force,
            "retry_count": self.retry_count,
            "queued_at": _iso(self.queued_at),
            "run_after": _iso(self.run_after),
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
            "worker_id": self.worker_id,
            "cancel_requested": self.cancel_requested,
            "error_message": self.error_message,
            "progress": self.progress,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The result of an enqueue: the job, and whether this call created it."""

    job: Job
    created: bool


@dataclass(frozen=True, slots=True)
class RescueReport:
    """Jobs taken back from workers that stopped heart-beating or ran past the timeout."""

    requeued: tuple[int, ...]
    failed: tuple[int, ...]
    #: Jobs whose cancellation had been requested: they are cancelled, not requeued.
    cancelled: tuple[int, ...] = ()

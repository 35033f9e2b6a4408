"""The durable sync queue (see :mod:`storesync.queue.manager` for its guarantees)."""

from storesync.queue.jobs import Enqueued, Job, JobStatus, Priority, Reason, RescueReport
from storesync.queue.manager import JobQueue, LostJobError
from storesync.queue.wakeup import Wakeup

__all__ = [
    "Enqueued",
    "Job",
    "JobQueue",
    "JobStatus",
    "LostJobError",
    "Priority",
    "Reason",
    "RescueReport",
    "Wakeup",
]

"""The worker process: claims jobs, runs them, keeps their leases, schedules refreshes."""

from storesync.worker.runner import Worker

__all__ = ["Worker"]

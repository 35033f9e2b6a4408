"""Turning a queued job into cached dashboard data."""

from storesync.sync.pipeline import SyncPipeline, SyncServices

__all__ = ["SyncPipeline", "SyncServices"]

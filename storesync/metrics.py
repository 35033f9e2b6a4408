"""Prometheus metrics, exposed by the worker (``--metrics-port``) and the server (``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The metric families of one process (its own registry: tests can build several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "storesync_jobs", "Jobs finished by this process, by outcome.", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.job_duration = Histogram(
            "storesync_job_duration_seconds", "Time from claim to outcome.",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600), registry=self.registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "storesync_queue_depth", "Jobs per status, as last seen.", ["status"],
            registry=self.registry,
        )  # fmt: skip
        self.provider_calls = Counter(
            "storesync_provider_calls", "HTTP calls to providers.", ["provider", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.throttles = Counter(
            "storesync_provider_throttles", "Rate-limit answers from providers.", ["provider"],
            registry=self.registry,
        )  # fmt: skip
        self.cache_reads = Counter(
            "storesync_cache_reads", "Dashboard reads by cache outcome.", ["outcome"],
            registry=self.registry,
        )  # fmt: skip

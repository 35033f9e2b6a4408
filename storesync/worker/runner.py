"""``storesync worker``: an asyncio process that runs syncs from the queue.

It is a claim loop plus three small background loops, each of which catches, logs and sleeps,
so that a database outage pauses the worker instead of killing it:

- **heartbeat** (every lease/3): renews the leases of running jobs and the worker's registry
  row; a job this worker no longer owns is stopped, and one whose cancellation was requested
  is stopped and marked cancelled. A job whose lease runs out while the database cannot be
  reached is stopped too: a rescue may give it to another worker the moment it answers.
- **rescue** (every lease/2): takes back jobs of workers that died (any worker may do it).
- **scheduler** (every ``scheduler_interval_seconds``): queues refreshes of stale periods,
  while this worker holds the scheduler lease.

Stopping (SIGTERM, SIGINT): no new claims; running jobs get ``shutdown_grace_seconds`` to
finish; the rest are handed back to the queue without counting an attempt. A second signal
skips the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from storesync.metrics import Metrics
from storesync.queue import Job, Wakeup
from storesync.queue.stats import queue_stats
from storesync.queue.workers import WorkerRegistry, new_worker_id
from storesync.scheduler import Scheduler
from storesync.storage.engine import is_unavailable
from storesync.sync.pipeline import SyncPipeline, SyncServices

log = logging.getLogger(__name__)

#: How long a job missing from a heartbeat's renewals may take to finish before it is deemed
#: taken back (its own completion commits before its task ends).
FINISHING_SECONDS = 0.5


@dataclass(slots=True)
class RunningJob:
    job: Job
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None  # "cancel", "lost" or "shutdown"
    finished: bool = False
    started: float = field(default_factory=time.monotonic)
    # When its lease was last taken or renewed, by this process's monotonic clock, read before
    # asking: the database counts the lease from about then.
    renewed: float = field(default_factory=time.monotonic)


class Worker:
    """Runs jobs from the queue with at most ``concurrency`` at a time in this process."""

    def __init__(
        self,
        services: SyncServices,
        *,
        concurrency: int = 3,
        worker_id: str | None = None,
        schedule: bool = True,
        metrics: Metrics | None = None,
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.queue = services.queue
        self.concurrency = concurrency
        self.id = worker_id or new_worker_id()
        self.metrics = metrics or Metrics()
        self.pipeline = SyncPipeline(services)
        self.wakeup = Wakeup(services.database, self.settings.poll_interval_seconds)
        self.registry = WorkerRegistry(
            services.database, stale_after_seconds=self.settings.lease_seconds
        )
        self.scheduler = (
            Scheduler(services.database, self.settings, self.queue, services.stores, holder=self.id)
            if schedule
            else None
        )
        self.running: dict[int, RunningJob] = {}
        self._stopping = asyncio.Event()
        self._grace = self.settings.shutdown_grace_seconds

    # -- life cycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """Begin a graceful stop; a second call skips the grace period."""
        if self._stopping.is_set():
            self._grace = 0
        self._stopping.set()
        self.wakeup.set()

    async def run(self, *, once: bool = False) -> None:
        """Work until :meth:`stop` (or, with ``once``, until no job is due and none runs)."""
        await self.wakeup.start()
        await self._until_database(lambda: self.registry.register(self.id, self.concurrency))
        log.info("worker %s started (concurrency %d)", self.id, self.concurrency)
        loops = [
            self._every(self.settings.lease_seconds / 3, self._heartbeat, "heartbeat"),
            self._every(self.settings.lease_seconds / 2, self._rescue, "rescue"),
        ]
        if self.scheduler is not None:
            loops.append(
                self._every(
                    self.settings.scheduler_interval_seconds, self.scheduler.tick, "scheduler"
                )
            )
        background = [asyncio.create_task(loop) for loop in loops]
        try:
            await self._claim_loop(once)
        finally:
            await self._finish_running()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._leave()

    async def _leave(self) -> None:
        with contextlib.suppress(Exception):  # leaving: the registry row also expires by itself
            if self.scheduler is not None:
                await self.scheduler.resign()
            await self.registry.unregister(self.id)
        await self.wakeup.stop()
        log.info("worker %s stopped", self.id)

    # -- claiming --------------------------------------------------------------------------

    async def _claim_loop(self, once: bool) -> None:
        failures = 0
        while not self._stopping.is_set():
            claimed: list[Job] = []
            free = self.concurrency - len(self.running)
            if free > 0:
                try:
                    asked = time.monotonic()
                    claimed = await self.queue.claim(self.id, free)
                    failures = 0
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    failures += 1
                    await self._database_down("claim", exc, failures)
                    continue
                for job in claimed:
                    self._start(job, leased=asked)
            if once and not claimed and not self.running:
                try:
                    if await self.queue.count_due() == 0:
                        return
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    failures += 1
                    await self._database_down("count", exc, failures)
                    continue
            if claimed and len(self.running) < self.concurrency:
                continue  # more may be waiting
            await self.wakeup.wait()

    def _start(self, job: Job, *, leased: float) -> None:
        entry = RunningJob(job, renewed=leased)
        self.running[job.id] = entry
        entry.task = asyncio.create_task(self._execute(entry), name=f"job-{job.id}")
        log.info("job %s started (store %s, %s)", job.id, job.store_id, job.period)

    async def _execute(self, entry: RunningJob) -> None:
        job = entry.job
        outcome = "lost"
        try:
            elapsed = (self.queue.clock() - (job.started_at or self.queue.clock())).total_seconds()
            budget = max(1.0, self.settings.job_timeout_seconds - elapsed)
            try:
                result = await asyncio.wait_for(self._run_surviving_outages(job), budget)
                outcome = result.status.value if result is not None else "lost"
            except TimeoutError:
                outcome = "timeout"
                await self._safely(
                    self.queue.fail(
                        job.id,
                        self.id,
                        f"the sync ran past the {self.settings.job_timeout_seconds:g} s timeout",
                        retryable=True,
                    )
                )
        except asyncio.CancelledError:
            outcome = entry.stop_reason or "cancelled"
            if entry.stop_reason == "cancel":
                await self._safely(self.queue.mark_cancelled(job.id, self.id))
            elif entry.stop_reason == "shutdown":
                await self._safely(
                    self.queue.release(self.id, [job.id], "handed back: the worker is stopping")
                )
        except Exception as exc:
            # The pipeline records its own failures: this one escaped it (a bug in recording
            # one?). Still, free the slot now rather than when the lease lapses.
            outcome = "error"
            log.exception("job %s crashed the worker's job runner", job.id)
            await self._safely(
                self.queue.fail(
                    job.id,
                    self.id,
                    f"internal error: {type(exc).__name__}: {exc}",
                    retryable=True,
                )
            )
        finally:
            entry.finished = True
            self.running.pop(job.id, None)
            self.metrics.jobs.labels(outcome).inc()
            self.metrics.job_duration.observe(time.monotonic() - entry.started)
            log.info("job %s: %s", job.id, outcome)
            self.wakeup.set()

    async def _run_surviving_outages(self, job: Job) -> Job | None:
        failures = 0
        while True:
            try:
                if failures and job.id not in await self.queue.heartbeat(self.id, [job.id]):
                    # Its lease lapsed while the database was away and another worker may
                    # run it now: syncing the store beside it would spend the providers'
                    # budgets twice.
                    log.warning("job %s was taken back during the outage; dropping it", job.id)
                    return None
                return await self.pipeline.run(job, self.id)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                # The providers' answers are lost with this attempt, but the job is not: run
                # it again once the database answers, if it is still ours.
                failures += 1
                await self._database_down(f"job {job.id}", exc, failures)

    async def _safely(self, step: Awaitable[object]) -> None:
        try:
            await step
        except Exception as exc:  # the lease will lapse and the job be rescued
            log.warning("could not record a job outcome: %s", exc)

    async def _finish_running(self) -> None:
        tasks = [e.task for e in self.running.values() if e.task is not None]
        if not tasks:
            return
        log.info("waiting up to %.0f s for %d running job(s)", self._grace, len(tasks))
        _done, pending = await asyncio.wait(tasks, timeout=self._grace)
        for entry in list(self.running.values()):
            if entry.task in pending:
                entry.stop_reason = "shutdown"
                entry.task.cancel()
        if pending:
            await asyncio.wait(pending)

    # -- background loops ------------------------------------------------------------------

    async def _every(
        self, seconds: float, step: Callable[[], Awaitable[object]], name: str
    ) -> None:
        while True:
            try:
                await step()
            except Exception as exc:
                if is_unavailable(exc):
                    log.warning("%s: database unavailable (%s); retrying", name, type(exc).__name__)
                else:
                    log.exception("%s failed; retrying", name)
            await asyncio.sleep(seconds)

    async def _heartbeat(self) -> None:
        entries = [e for e in self.running.values() if not e.finished]
        asked = time.monotonic()
        try:
            owned = await self.queue.heartbeat(self.id, [e.job.id for e in entries])
        except Exception as exc:
            if is_unavailable(exc):
                self._stop_unrenewed(entries)
            raise
        for entry in entries:
            if entry.job.id in owned:
                entry.renewed = asked
        unrenewed = {}
        for entry in entries:
            if entry.finished or entry.task is None:
                continue
            if entry.job.id not in owned:
                unrenewed[entry.task] = entry
            elif owned[entry.job.id]:
                entry.stop_reason = "cancel"
                entry.task.cancel()
        if unrenewed:
            # Some may be their own ends, committed while the heartbeat ran: a job that
            # finishes within a moment was not taken back. (All waited for at once.)
            _, lost = await asyncio.wait(unrenewed, timeout=FINISHING_SECONDS)
            for task in lost:
                unrenewed[task].stop_reason = "lost"
                task.cancel()
        is_scheduler = self.scheduler.is_leader if self.scheduler else False
        await self.registry.heartbeat(
            self.id, jobs_running=len(self.running), is_scheduler=is_scheduler
        )
        stats = await queue_stats(self.services.database, self.settings)
        for status in ("queued", "processing", "completed", "failed", "cancelled"):
            self.metrics.queue_depth.labels(status).set(getattr(stats, status))

    def _stop_unrenewed(self, entries: list[RunningJob]) -> None:
        """Stop the jobs whose leases ran out while the database could not be reached: the
        moment it answers, a rescue may give them to another worker, and the store must not
        be synced twice at once. (Still processing, they are rescued and run again.)"""
        for entry in entries:
            lapsed = time.monotonic() - entry.renewed >= self.settings.lease_seconds
            if lapsed and entry.task is not None and not entry.finished:
                log.warning("job %s: its lease ran out unrenewed; stopping it", entry.job.id)
                entry.stop_reason = "lost"
                entry.task.cancel()

    async def _rescue(self) -> None:
        report = await self.queue.rescue()
        if report.requeued or report.failed:
            log.warning("rescued jobs: requeued %s, failed %s", report.requeued, report.failed)
            self.wakeup.set()

    async def _until_database(self, step: Callable[[], Awaitable[object]]) -> None:
        failures = 0
        while True:
            try:
                await step()
                return
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                failures += 1
                await self._database_down("start", exc, failures)

    async def _database_down(self, what: str, exc: BaseException, failures: int) -> None:
        delay = min(10.0, 0.5 * 2 ** min(failures, 5))
        log.warning(
            "%s: database unavailable (%s); retrying in %.1f s", what, type(exc).__name__, delay
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

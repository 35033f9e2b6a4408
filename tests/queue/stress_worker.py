"""Process entry points for the multi-process queue stress tests (``test_stress.py``).

They run in spawned OS processes, so they take plain arguments (a database URL, paths) and
report through files. Times are ``time.time_ns()``: the one clock every process shares.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import date
from pathlib import Path
from typing import Any

from storesync.queue import JobQueue, JobStatus
from storesync.settings import Settings
from storesync.storage import connect

#: How many jobs one worker process runs at once; more than the global limit, on purpose.
LOCAL_SLOTS = 3
#: Idle pause between claims when nothing could be claimed.
IDLE_SECONDS = 0.002


def stress_settings(url: str, data_dir: str, limit: int) -> Settings:
    return Settings(
        database_url=url,
        data_dir=Path(data_dir),
        secret_key="test-secret-key",  # type: ignore[arg-type]
        max_concurrent_jobs=limit,
    )


def run_worker(
    url: str, data_dir: str, worker_id: str, out: str, limit: int, seed: int, barrier: Any
) -> None:
    """Claim and finish jobs until the queue is drained; write one JSON line per job."""
    asyncio.run(_work(stress_settings(url, data_dir, limit), worker_id, Path(out), seed, barrier))


async def _work(settings: Settings, worker_id: str, out: Path, seed: int, barrier: Any) -> None:
    rng = random.Random(seed)
    database = connect(settings)
    queue = JobQueue(database, settings)
    records: list[dict[str, Any]] = []
    running: set[asyncio.Task[None]] = set()

    async def run(job_id: int, store_id: int) -> None:
        # Start is taken after claim returned and end before complete is called, so the
        # recorded interval lies strictly inside the database's processing window.
        start = time.time_ns()
        await asyncio.sleep(rng.uniform(0.001, 0.006))
        end = time.time_ns()
        await queue.complete(job_id, worker_id)
        records.append(
            {"job": job_id, "store": store_id, "worker": worker_id, "start": start, "end": end}
        )

    try:
        await asyncio.to_thread(barrier.wait)
        while True:
            for task in [t for t in running if t.done()]:
                running.discard(task)
                task.result()  # a LostJobError here fails the worker, and the test
            free = LOCAL_SLOTS - len(running)
            jobs = await queue.claim(worker_id, limit=free) if free > 0 else []
            for job in jobs:
                task = asyncio.create_task(run(job.id, job.store_id))
                running.add(task)
            if jobs:
                continue
            if running:
                await asyncio.wait(
                    running, timeout=IDLE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                continue
            if not await _work_left(queue):
                break
            await asyncio.sleep(IDLE_SECONDS)
    finally:
        out.write_text("".join(json.dumps(r) + "\n" for r in records))
        await database.dispose()


async def _work_left(queue: JobQueue) -> bool:
    for status in (JobStatus.QUEUED, JobStatus.PROCESSING):
        if await queue.list_jobs(status=status, limit=1):
            return True
    return False


def run_enqueuer(
    url: str,
    data_dir: str,
    out: str,
    keys: list[tuple[int, str, str]],
    rounds: int,
    barrier: Any,
) -> None:
    """Enqueue every (store, start, end) in ``keys`` ``rounds`` times, each round at once."""
    asyncio.run(_enqueue(stress_settings(url, data_dir, 3), Path(out), keys, rounds, barrier))


async def _enqueue(
    settings: Settings, out: Path, keys: list[tuple[int, str, str]], rounds: int, barrier: Any
) -> None:
    database = connect(settings)
    queue = JobQueue(database, settings)
    results: list[dict[str, Any]] = []
    try:
        await asyncio.to_thread(barrier.wait)
        for _ in range(rounds):
            answers = await asyncio.gather(
                *(
                    queue.enqueue(store, date.fromisoformat(start), date.fromisoformat(end))
                    for store, start, end in keys
                )
            )
            results.extend(
                {"key": list(key), "job": a.job.id, "created": a.created}
                for key, a in zip(keys, answers, strict=True)
            )
    finally:
        out.write_text("".join(json.dumps(r) + "\n" for r in results))
        await database.dispose()

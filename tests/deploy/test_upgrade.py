"""The guide's upgrade, run while jobs run: the units start on a database one migration behind,
then the upgrade block backs up, migrates the live database and restarts every unit in its
order. Every job completes, none is lost or duplicated, and none pays an attempt for it."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

from storesync.settings import Settings
from storesync.storage import connect, migrate
from storesync.storage.migrate import alembic_config, current_revision, head_revision
from tests.deploy.conftest import Postgres
from tests.deploy.support import (
    BACKUP_DIR,
    FAST_KLAVIYO,
    Api,
    Machine,
    Services,
    deployed_env,
    live_workers,
    query,
    run_block,
    token_for,
    tool_env,
    wait_healthy,
)
from tests.harness import SimulatorProcess, free_port, read_jobs, wait_for

pytestmark = pytest.mark.slow

INSTALL = "sudo /opt/storesync/venv/bin/pip install --upgrade storesync-0.2.0-py3-none-any.whl"


def previous_revision() -> str | None:
    """The revision before the newest, or None while there is only one migration."""
    head = ScriptDirectory.from_config(alembic_config()).get_revision(head_revision())
    assert head is not None
    down = head.down_revision
    assert down is None or isinstance(down, str), "a merge revision: pick one parent"
    return down


async def _migrate_to(url: str, revision: str) -> None:
    database = connect(Settings(database_url=url), poolclass=NullPool)
    try:
        await migrate(database, revision)
    finally:
        await database.dispose()


async def _revision(url: str) -> str | None:
    database = connect(Settings(database_url=url), poolclass=NullPool)
    try:
        return await current_revision(database)
    finally:
        await database.dispose()


def test_an_upgrade_while_workers_run_loses_no_job(
    postgres: Postgres, simulator: SimulatorProcess, services: Services, tmp_path: Path
) -> None:
    role = postgres.create_role()
    url = Postgres.url(postgres.create(owner=role), role, "upgrade-test-password")
    previous = previous_revision()
    if previous is not None:
        asyncio.run(_migrate_to(url, previous))
    assert asyncio.run(_revision(url)) == previous  # None: empty, before the first migration

    # Short chunks and a short grace, so that a stopping worker hands its jobs back rather
    # than finishing them.
    values = deployed_env(
        {
            "STORESYNC_DATABASE_URL": url,
            "STORESYNC_SECRET_KEY": "upgrade-test-secret-key",
            "STORESYNC_SHOPIFY_API_SECRET": "upgrade-test-shopify-secret",
            "STORESYNC_SHUTDOWN_GRACE_SECONDS": "1",
        },
        STORESYNC_SYNC_CHUNK_DAYS="7",
        **FAST_KLAVIYO,
        **simulator.env,
    )
    machine = Machine.create("machine-a", tmp_path, values)
    ops = tool_env(machine.env_file, tmp_path)
    backups = tmp_path / "backups"
    backups.mkdir()
    api_port, ports = free_port(), [free_port(), free_port()]
    api_unit = "storesync-api.service"
    worker_units = [f"storesync-worker@{p}.service" for p in ports]

    # All units start at once against the old schema: they migrate it one after the other.
    server = services.start(api_unit, machine, port=api_port)
    workers = {u: services.start(u, machine) for u in worker_units}
    base = f"http://127.0.0.1:{api_port}"
    wait_healthy(base, server)
    wait_for(lambda: len(live_workers(machine.env_file)) == 2, timeout=60, what="two workers")
    head = head_revision()
    assert asyncio.run(_revision(url)) == head
    assert query(url, "SELECT version_num FROM alembic_version") == [(head,)]

    # Four stores, three long periods each: twelve jobs, each of several chunks. The providers
    # answer slowly until the upgrade is done, so that jobs are running at every restart.
    simulator.post("/_sim/config", {"latency": {"fixed_ms": 700}})
    api = Api(base, token_for(machine.env_file))
    queued = []
    for shop in simulator.get("/_sim/stores")["stores"]:
        store = api.add_store(shop, ["yesterday"])
        for n in range(3):
            end = date.today() - timedelta(days=30 + 50 * n)
            queued.append(
                api.queue(store, {"start": str(end - timedelta(days=41)), "end": str(end)})
            )

    # The upgrade starts while the first worker to be restarted is running jobs.
    first_pid = str(workers[worker_units[0]].process.pid)
    wait_for(
        lambda: any(
            j["status"] == "processing" and f":{first_pid}:" in (j["worker_id"] or "")
            for j in read_jobs(url)
        ),
        timeout=60,
        what="a job running on the first worker",
    )
    upgrade = run_block(
        "upgrade",
        {
            BACKUP_DIR: str(backups),
            INSTALL: ": the test runs this checkout",
            "storesync-worker@9101": f"storesync-worker@{ports[0]}",
            "storesync-worker@9102": f"storesync-worker@{ports[1]}",
        },
        ops,
    )
    assert f"is at schema revision {head}" in upgrade.stdout
    assert [p.suffix for p in backups.iterdir()] == [".dump"]
    assert upgrade.systemctl == [["restart", u] for u in [*worker_units, api_unit]]
    for _, unit in upgrade.systemctl:  # systemctl restart: SIGTERM, wait, start again
        if unit == api_unit:
            simulator.post("/_sim/config", {"latency": {"fixed_ms": 20}})  # the rest, quickly
            server = services.restart(unit, port=api_port)
        else:
            services.restart(unit)
    assert services.exits == {u: [0] for u in [*worker_units, api_unit]}

    def settled() -> list[dict[str, Any]] | None:
        jobs = read_jobs(url)
        return jobs if all(j["status"] in ("completed", "failed") for j in jobs) else None

    jobs = wait_for(settled, timeout=180, interval=0.5, what="every job finished")
    users = sorted((j for j in jobs if j["reason"] == "user"), key=lambda j: j["id"])
    assert [j["id"] for j in users] == queued  # none lost, none duplicated
    assert [(j["status"], j["retry_count"]) for j in jobs] == [("completed", 0)] * len(jobs)
    wait_healthy(base, server)

    # Some jobs were running when their worker stopped: handed back, finished by another.
    events = {j: api.job(j)["events"] for j in queued}
    handed_back = [j for j, log in events.items() if any(e["kind"] == "released" for e in log)]
    assert handed_back, "no job was running when the workers restarted"

    # The cache holds one row per store, data type and period.
    rows = query(
        url,
        "SELECT store_id, data_type, period_start, period_end, count(*) "
        "FROM store_sync_cache GROUP BY 1, 2, 3, 4",
    )
    assert len(rows) >= 2 * len(queued) and {r[-1] for r in rows} == {1}

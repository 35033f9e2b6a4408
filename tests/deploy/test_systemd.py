"""The guide's deployment, run: PostgreSQL set up by its commands, its units started with its
env file (one API with --no-worker, two workers on two machines), a sync through the API."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.support import old_period
from tests.deploy.conftest import Postgres
from tests.deploy.support import (
    FAST_KLAVIYO,
    Api,
    Machine,
    Services,
    assert_no_secret,
    commands,
    deployed_env,
    guide_block,
    live_workers,
    run_block,
    storesyncctl,
    tool_env,
    wait_healthy,
)
from tests.harness import SimulatorProcess, free_port, wait_for

pytestmark = pytest.mark.slow


def completed_by_metrics(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = re.search(r'^storesync_jobs_total\{outcome="completed"\} ([\d.]+)$', text, re.M)
    return float(found[1]) if found else 0.0


def test_the_guide_deploys_an_api_and_two_workers_on_two_machines(
    postgres: Postgres, simulator: SimulatorProcess, services: Services, tmp_path: Path
) -> None:
    # PostgreSQL, with the guide's commands: a role that owns its database, no superuser.
    role, database = postgres.new_role(), postgres.new_database()
    admin = tool_env(tmp_path / "none.env", tmp_path, **Postgres.client_env())
    run_block(
        "pg-setup",
        {
            "createuser storesync": f"createuser {role}",
            "createdb --owner=storesync storesync": f"createdb --owner={role} {database}",
        },
        admin,
    )

    # The env example, filled in, on two machines.
    password = f"pw-{secrets.token_hex(8)}"
    secret_values = {
        "STORESYNC_DATABASE_URL": Postgres.url(database, role, password),
        "STORESYNC_SECRET_KEY": secrets.token_urlsafe(32),
        "STORESYNC_SHOPIFY_API_SECRET": f"shpss_{secrets.token_hex(12)}",
    }
    values = deployed_env(secret_values, **FAST_KLAVIYO, **simulator.env)
    machine_a = Machine.create("machine-a", tmp_path, values)
    machine_b = Machine.create("machine-b", tmp_path, values)
    ops = tool_env(machine_a.env_file, tmp_path)
    api_port, metrics = free_port(), [free_port(), free_port()]

    # The guide's "Start" block: init runs; the units it enables are started here, the
    # second worker on machine B (as "Several machines" says).
    start = run_block(
        "start",
        {f"storesync-worker@{9101 + i}": f"storesync-worker@{p}" for i, p in enumerate(metrics)},
        ops,
    )
    assert "is at schema revision" in start.stdout and ":***@" in start.stdout
    units = [unit for call in start.systemctl for unit in call if unit.endswith(".service")]
    assert [c[:2] for c in start.systemctl] == [["enable", "--now"]] * 2
    assert units == [
        "storesync-api.service",
        f"storesync-worker@{metrics[0]}.service",
        f"storesync-worker@{metrics[1]}.service",
    ]
    api = services.start(units[0], machine_a, port=api_port)
    workers = [
        services.start(units[1], machine_a),
        services.start(units[2], machine_b),
    ]
    url = f"http://127.0.0.1:{api_port}"

    # "Check that everything is up": each line of the block, run.
    check = commands(guide_block("check"))
    assert check[0].startswith("curl -s http://127.0.0.1:8000/healthz")
    expected_health = json.loads(guide_block("check").splitlines()[0].split("#", 1)[1])
    assert (
        wait_healthy(url, api)
        == expected_health
        == {
            "status": "ok",
            "database": "postgresql",
            "worker": "disabled",
        }
    )
    wait_for(lambda: len(live_workers(machine_a.env_file)) == 2, timeout=60, what="two workers")
    assert check[2] == "sudo -u storesync storesyncctl tokens create --account default"
    token = storesyncctl(ops, "tokens", "create", "--account", "default").stdout.split()[-1]

    # A store from the simulator, and a sync queued through the API.
    api = Api(url, token)
    shop = simulator.get("/_sim/stores")["stores"][0]
    store = api.add_store(shop)
    period = old_period()
    dates = {"start": period.start.isoformat(), "end": period.end.isoformat()}
    job = api.sync(store, dates)
    assert job["worker_id"].split(":")[1] in {str(w.process.pid) for w in workers}
    shown = api.show(store, dates)
    truth = simulator.truth(shop["shop_domain"], dates["start"], dates["end"])
    assert (shown["shopify"], shown["klaviyo"]) == (truth["shopify"], truth["klaviyo"])

    # `storesyncctl stats` lists both workers; one is the scheduler (it says so at its
    # first heartbeat after taking the lease).
    def with_scheduler() -> list[dict[str, Any]] | None:
        live = live_workers(machine_a.env_file)
        return live if any(w["is_scheduler"] for w in live) else None

    live = wait_for(with_scheduler, timeout=30, what="the scheduler")
    assert sorted(w["pid"] for w in live) == sorted(w.process.pid for w in workers)
    assert sum(w["is_scheduler"] for w in live) == 1
    assert check[1] == "sudo -u storesync storesyncctl stats"
    stats = storesyncctl(ops, "stats")
    assert "2 live worker(s)" in stats.stdout
    assert all(str(w.process.pid) in stats.stdout for w in workers)

    # Each worker serves its metrics on its instance's port; one of them ran the job.
    assert sum(completed_by_metrics(port) for port in metrics) >= 1

    # Nothing of value on the machines' disks: the key comes from the env file.
    for machine in (machine_a, machine_b):
        assert not (machine.data_dir / "secret.key").exists()
        assert not (machine.data_dir / "storesync.db").exists()

    # SIGTERM (systemctl stop) ends every unit within its TimeoutStopSec, with status 0.
    assert [services.stop(u) for u in units] == [0, 0, 0]
    journal = services.log_text()
    for line in filter(None, journal.splitlines()):
        json.loads(line)  # --log-json: one JSON object a line
    assert "job" in journal and "worker" in journal
    assert_no_secret(
        [
            password,
            *list(secret_values.values())[1:],
            token,
            shop["shopify_token"],
            shop["klaviyo_private_key"],
        ],
        journal,
        start.stdout,
        start.stderr,
        stats.stdout,
    )

"""The guide's backup and restore blocks, run as written against a live deployment; the
restored database serves the cached dashboard, with no call to the providers."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest

from tests.api.support import old_period
from tests.deploy.conftest import Postgres
from tests.deploy.support import (
    BACKUP_DIR,
    DATA_DIR,
    FAST_KLAVIYO,
    Api,
    Machine,
    Services,
    deployed_env,
    query,
    run_block,
    token_for,
    tool_env,
    wait_healthy,
)
from tests.harness import SimulatorProcess, free_port

pytestmark = pytest.mark.slow

API = "storesync-api.service"
SECRETS = {
    "STORESYNC_SECRET_KEY": "backup-test-secret-key",
    "STORESYNC_SHOPIFY_API_SECRET": "backup-test-shopify-secret",
}


PERIOD = old_period()  # final: its figures never expire
FIRST = {"start": str(PERIOD.start), "end": str(PERIOD.end)}
LATER = {"start": str(PERIOD.start - timedelta(days=7)), "end": str(PERIOD.end)}


def test_postgres_backup_of_a_live_deployment_restores_into_a_new_database(
    postgres: Postgres, simulator: SimulatorProcess, services: Services, tmp_path: Path
) -> None:
    role = postgres.create_role()
    url = Postgres.url(postgres.create(owner=role), role, "backup-test-password")
    values = deployed_env(
        {"STORESYNC_DATABASE_URL": url, **SECRETS}, **FAST_KLAVIYO, **simulator.env
    )
    machine = Machine.create("machine-a", tmp_path, values)
    backups = tmp_path / "backups"
    backups.mkdir()
    port, metrics = free_port(), free_port()
    server = services.start(API, machine, port=port)
    services.start(f"storesync-worker@{metrics}.service", machine)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, server)
    token = token_for(machine.env_file)
    api = Api(base, token)
    shop = simulator.get("/_sim/stores")["stores"][0]
    store = api.add_store(shop, ["today"])
    api.sync(store, FIRST)
    before = api.show(store, FIRST)
    jobs = api.user_jobs()

    # The backup, while the API and the worker run.
    ops = tool_env(machine.env_file, tmp_path)
    taken = run_block("pg-backup", {BACKUP_DIR: str(backups)}, ops)
    assert ":***@" in taken.stdout and "backup-test-password" not in taken.stdout
    [dump] = backups.iterdir()
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert [services.stop(unit) for unit in list(services.running)] == [0, 0]
    calls = len(simulator.requests())

    # The restore, as the postgres user, into a new database the storesync role owns.
    restored = postgres.new_database()
    run_block(
        "pg-restore",
        {
            BACKUP_DIR: str(backups),
            "--owner=storesync storesync_restored": f"--owner={role} {restored}",
            "--role=storesync": f"--role={role}",
            "--dbname=storesync_restored": f"--dbname={restored}",
        },
        tool_env(machine.env_file, tmp_path, **Postgres.client_env()),
    )
    restored_url = Postgres.url(restored, role, "backup-test-password")
    owners = query(restored_url, "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert {owner for (owner,) in owners} == {role}

    # The API on the restored database, as the storesync role: the same token, the same
    # figures from the cache, the same jobs, and no call to the providers.
    again = Machine.create(
        "machine-a-restored",
        tmp_path,
        deployed_env(
            {"STORESYNC_DATABASE_URL": restored_url, **SECRETS}, **FAST_KLAVIYO, **simulator.env
        ),
    )
    server = services.start(API, again, port=port)
    wait_healthy(base, server)
    assert api.show(store, FIRST) == before
    assert api.user_jobs() == jobs
    assert len(simulator.requests()) == calls


def test_sqlite_backup_while_serving_restores_the_snapshot(
    simulator: SimulatorProcess, services: Services, tmp_path: Path
) -> None:
    # One machine, SQLite: no database URL, and the API unit without --no-worker.
    values = deployed_env(
        SECRETS, drop=("STORESYNC_DATABASE_URL",), **FAST_KLAVIYO, **simulator.env
    )
    machine = Machine.create("machine-a", tmp_path, values)
    backups = tmp_path / "backups"
    backups.mkdir()
    port = free_port()
    server = services.start(API, machine, port=port, drop=("--no-worker",))
    base = f"http://127.0.0.1:{port}"
    assert wait_healthy(base, server) == {"status": "ok", "database": "sqlite", "worker": "running"}
    api = Api(base, token_for(machine.env_file))
    store = api.add_store(simulator.get("/_sim/stores")["stores"][1], ["today"])
    first = api.sync(store, FIRST)["id"]
    before = api.show(store, FIRST)

    # The backup while the server runs; then more work that the backup must not hold.
    ops = tool_env(machine.env_file, tmp_path)
    run_block("sqlite-backup", {BACKUP_DIR: str(backups)}, ops)
    [copy] = backups.iterdir()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    second = api.sync(store, LATER)["id"]
    assert api.user_jobs() == [(first, "completed"), (second, "completed")]
    assert services.stop(API) == 0

    # The restore, as the guide says, with the server stopped.
    run_block("sqlite-restore", {BACKUP_DIR: str(backups), DATA_DIR: str(machine.data_dir)}, ops)
    assert (machine.data_dir / "before-restore" / "storesync.db").exists()
    assert stat.S_IMODE((machine.data_dir / "storesync.db").stat().st_mode) == 0o600
    server = services.start(API, machine, port=port, drop=("--no-worker",))
    wait_healthy(base, server)
    assert api.show(store, FIRST) == before
    assert api.user_jobs() == [(first, "completed")]  # the snapshot, not what came after
    missing = api.client.get(f"/api/stores/{store}/dashboard", params=LATER)
    assert missing.status_code == 202  # its figures came after the backup: synced again

"""Fixtures of the deployment tests: the simulator, a systemd stand-in, PostgreSQL roles."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import PG_ADMIN_URL, _admin, pg_url
from tests.deploy.support import Services
from tests.harness import SimulatorProcess, fast_config, fast_stores, run_simulator

LATENCY = {"fixed_ms": 0, "jitter_ms": 0}  # the simulator's default: answers at once


@pytest.fixture(scope="session")
def shared_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    with run_simulator(fast_config(fast_stores(4)), tmp_path_factory.mktemp("sim")) as process:
        yield process


@pytest.fixture
def simulator(shared_simulator: SimulatorProcess) -> SimulatorProcess:
    """The provider simulator over TCP, with four stores whose budgets refill fast; each test
    finds it as new (windows, budgets, log and latency)."""
    shared_simulator.post("/_sim/reset")
    shared_simulator.post("/_sim/config", {"latency": LATENCY})
    return shared_simulator


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    logs = tmp_path / "journal"
    logs.mkdir()
    running = Services(logs)
    yield running
    running.stop_all()


@dataclass
class Postgres:
    """Roles and databases made for one test, dropped after it."""

    roles: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    def name(self, kind: str) -> str:
        return f"storesync_{kind}_{uuid.uuid4().hex[:10]}"

    def new_role(self) -> str:
        """A name for a role the test creates (the guide's commands create it)."""
        role = self.name("role")
        self.roles.append(role)
        return role

    def new_database(self) -> str:
        """A name for a database the test or the guide's commands create."""
        database = self.name("db")
        self.databases.append(database)
        return database

    def create_role(self) -> str:
        """A new role that may log in (as ``createuser`` makes it)."""
        role = self.new_role()
        asyncio.run(_admin(f'CREATE ROLE "{role}" LOGIN'))
        return role

    def create(self, owner: str | None = None) -> str:
        """A new, empty database (owned by ``owner``)."""
        database = self.new_database()
        suffix = f' OWNER "{owner}"' if owner else ""
        asyncio.run(_admin(f'CREATE DATABASE "{database}"{suffix}'))
        return database

    @staticmethod
    def url(database: str, role: str, password: str) -> str:
        """How storesync reaches ``database`` as ``role``. The test server trusts local
        connections, so the password is only there to be kept out of the logs."""
        host = urlsplit(pg_url(database))
        return f"postgresql://{role}:{password}@{host.hostname}:{host.port or 5432}/{database}"

    @staticmethod
    def client_env() -> dict[str, str]:
        """libpq's variables for the ``postgres`` user's commands (createdb, pg_restore)."""
        admin = urlsplit(PG_ADMIN_URL)
        return {
            "PGHOST": admin.hostname or "127.0.0.1",
            "PGPORT": str(admin.port or 5432),
            "PGUSER": admin.username or "postgres",
            "PGDATABASE": admin.path.lstrip("/") or "postgres",
        }

    def drop_all(self) -> None:
        for database in self.databases:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        for role in self.roles:
            asyncio.run(_admin(f'DROP ROLE IF EXISTS "{role}"'))


@pytest.fixture
def postgres(pg_template: str | None) -> Iterator[Postgres]:
    """PostgreSQL for a test that needs it: required (and present) in CI."""
    if pg_template is None:
        pytest.skip("PostgreSQL is not reachable (it is required, and runs, in CI)")
    made = Postgres()
    yield made
    made.drop_all()

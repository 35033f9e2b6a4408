"""What storesync writes to disk is its owner's only: the data directory 0700; the SQLite
database, its WAL and SHM and the generated key file 0600, under the common umask 022 (which
would otherwise leave them readable by every local user)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import cli_env, storesync
from tests.harness import logged_port, stop, wait_until_up


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)  # the subprocesses inherit it
    yield
    os.umask(previous)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_init_and_a_running_server_create_owner_only_files(tmp_path: Path, umask_022: None) -> None:
    data_dir = tmp_path / "data"
    database = data_dir / "storesync.db"
    env = cli_env(f"sqlite:///{database}", str(data_dir))
    del env["STORESYNC_SECRET_KEY"]  # so that the key file is generated

    storesync(env, "init")
    assert (mode(data_dir), mode(database)) == ("0o700", "0o600")

    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "storesync", "serve", "--port", "0", "--no-scheduler"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{logged_port(log, server)}"
        wait_until_up(f"{url}/healthz", server)
        wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")
        deadline = time.monotonic() + 10
        while not (wal.exists() and shm.exists()) and time.monotonic() < deadline:
            time.sleep(0.1)
        files = [database, wal, shm, data_dir / "secret.key"]
        assert {p.name: mode(p) for p in files} == {p.name: "0o600" for p in files}
        assert mode(data_dir) == "0o700"
    finally:
        stop(server)

"""Run the real ``storesync`` command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def cli_env(db_url: str, data_dir: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORESYNC_")}
    env.update(
        STORESYNC_DATABASE_URL=db_url,
        STORESYNC_DATA_DIR=data_dir,
        STORESYNC_SECRET_KEY="cli-test-key",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def storesync(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "storesync", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"storesync {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)

"""The per-account limits from the command line: a clear sentence and a non-zero exit, no
traceback, nothing written (issue 18, item 3)."""

from __future__ import annotations

from pathlib import Path
from subprocess import CompletedProcess

from tests.cli.helpers import cli_env, last_line, storesync


def add(env: dict[str, str], n: int, *, check: bool = True) -> CompletedProcess[str]:
    return storesync(
        env,
        "stores", "add", "--name", f"Store {n}", "--shopify-domain", f"store-{n}.myshopify.com",
        "--shopify-token", "shpat_x", "--timezone", "UTC",
        check=check,
    )  # fmt: skip


def test_syncs_and_stores_over_the_accounts_limits_are_refused(db_url: str, tmp_path: Path) -> None:
    env = cli_env(
        db_url,
        str(tmp_path),
        STORESYNC_MAX_QUEUED_JOBS_PER_ACCOUNT="1",
        STORESYNC_MAX_STORES_PER_ACCOUNT="1",
    )
    store = last_line(add(env, 1))
    storesync(env, "sync", store, "--start", "2025-01-01", "--end", "2025-01-01")
    refused = storesync(
        env, "sync", store, "--start", "2025-01-02", "--end", "2025-01-02", check=False
    )
    assert refused.returncode == 1
    assert "already has 1 syncs queued or running" in refused.stderr
    assert "Traceback" not in refused.stderr
    second = add(env, 2, check=False)
    assert second.returncode == 1
    assert "already has 1 stores" in second.stderr
    jobs = storesync(env, "jobs", "--json")
    assert jobs.stdout.count('"store_id"') == 1

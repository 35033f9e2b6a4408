"""The command line with periods no sync could compute and ids no database can hold (issue 18):
a one-line message and exit code 2, never a traceback, and nothing queued. Real subprocesses
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli.helpers import as_json, cli_env, last_line, storesync

RANGE = "use a date from 1970-01-01 to 9998-12-31"
TOO_BIG = str(2**63)


def refused(env: dict[str, str], *args: str) -> str:
    """Run a command that must be refused as a usage error; its stderr, squashed to one line."""
    result: subprocess.CompletedProcess[str] = storesync(env, *args, check=False)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    return " ".join(result.stderr.split())


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return cli_env(db_url, str(tmp_path))


def _store(env: dict[str, str]) -> str:
    added = storesync(
        env,
        "stores", "add", "--name", "Acme", "--shopify-domain", "acme.myshopify.com",
        "--shopify-token", "shpat_secret", "--timezone", "Europe/Lisbon",
    )  # fmt: skip
    return last_line(added)


def test_a_period_no_sync_can_compute_is_refused_by_sync_and_cache_show(
    env: dict[str, str],
) -> None:
    store = _store(env)
    for command in (("sync", store), ("cache", "show", store)):
        year_one = refused(env, *command, "--start", "0001-01-01", "--end", "0001-01-31")
        assert f"error: --start 0001-01-01 is out of range: {RANGE}" in year_one
        last_day = refused(env, *command, "--start", "9999-12-01", "--end", "9999-12-31")
        assert f"error: --start 9999-12-01 is out of range: {RANGE}" in last_day
        end_only = refused(env, *command, "--start", "2026-01-01", "--end", "9999-12-31")
        assert f"error: --end 9999-12-31 is out of range: {RANGE}" in end_only
    assert as_json(storesync(env, "jobs", "--json")) == []


def test_an_id_no_database_can_hold_is_a_usage_error(env: dict[str, str]) -> None:
    _store(env)
    period = ("--start", "2026-01-01", "--end", "2026-01-07")
    too_big = "Input should be less than or equal to 9223372036854775807"
    for command in (
        ("sync", TOO_BIG, *period),
        ("cache", "show", TOO_BIG, *period),
        ("logs", TOO_BIG),
        ("jobs", "--store", TOO_BIG),
        ("cache", "list", "--store", TOO_BIG),
    ):
        assert too_big in refused(env, *command), command
    prune = refused(env, "prune", "--older-than-days", "1e12")
    assert "Input should be less than or equal to 36500" in prune
    # An id that could exist but does not: the lookup says so.
    assert "error: job 4242 does not exist" in refused(env, "logs", "4242")
    assert "error: store 4242 does not exist" in refused(env, "sync", "4242", *period)

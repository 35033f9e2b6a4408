"""``storesync stores add`` applies the store rules: a clear one-line error (no traceback), a
non-zero exit, and nothing added; other shop hosts only with STORESYNC_SHOPIFY_ALLOWED_HOSTS."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cli.helpers import as_json, cli_env, last_line, storesync

ADD = ("stores", "add", "--name", "Acme", "--shopify-token", "shpat_x", "--account", "agency")


def _add(
    env: dict[str, str], domain: str, *extra: str, timezone: str = "Europe/Lisbon"
) -> subprocess.CompletedProcess[str]:
    return storesync(
        env, *ADD, "--shopify-domain", domain, "--timezone", timezone, *extra, check=False
    )


def test_bad_store_input_is_refused_with_a_clear_error(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, str(tmp_path))
    cases = [
        (("acme.myshopify.com", "--currency", "usdollar"), {}, "three-letter ISO 4217 code"),
        (("acme.myshopify.com",), {"timezone": "localtime"}, "unknown time zone 'localtime'"),
        (("acme.myshopify.com",), {"timezone": "right/UTC"}, "unknown time zone 'right/UTC'"),
        (("127.0.0.1",), {}, "'127.0.0.1' is not a Shopify shop domain"),
        (("https://127.0.0.1/some/path",), {}, "is not a Shopify shop domain"),
        (("acme.myshopify.com.evil.example.com",), {}, "is not a Shopify shop domain"),
        (("acme.myshopify.com", "--name", "x" * 5000), {}, "at most 200 characters"),
        (("acme.myshopify.com", "--name", "Ac\x1bme"), {}, "control characters"),
    ]
    for args, options, message in cases:
        result = _add(env, *args, **options)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        output = " ".join((result.stdout + result.stderr).split())
        assert "error:" in output and message in output, (args, output)
        assert "Traceback" not in output
    assert as_json(storesync(env, "stores", "list", "--json")) == []


def test_one_account_per_shop_and_the_allowed_hosts_setting(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, str(tmp_path))
    added = _add(env, "https://Acme.myshopify.com", "--currency", "eur")
    assert added.returncode == 0, added.stderr
    taken = storesync(
        env,
        "stores", "add", "--name", "Mine", "--shopify-domain", "acme.myshopify.com",
        "--shopify-token", "shpat_y", "--timezone", "UTC", "--account", "rival",
        check=False,
    )  # fmt: skip
    assert taken.returncode == 2
    assert "already exists in another account" in " ".join(taken.stderr.split())
    assert "Traceback" not in taken.stderr

    assert _add(env, "shop.sim.test").returncode == 2
    allowed = cli_env(db_url, str(tmp_path), STORESYNC_SHOPIFY_ALLOWED_HOSTS="*.sim.test")
    store_id = int(last_line(_add(allowed, "Shop.Sim.Test")))
    listed = as_json(storesync(env, "stores", "list", "--json"))
    assert [(s["id"], s["shopify_domain"], s["currency"]) for s in listed][-1] == (
        store_id,
        "shop.sim.test",
        None,
    )
    assert [s["shopify_domain"] for s in listed] == ["acme.myshopify.com", "shop.sim.test"]
    assert listed[0]["currency"] == "EUR"

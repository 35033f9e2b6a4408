"""The guide's sizing figures are the code's: computed here from the defaults and the limits."""

from __future__ import annotations

import math
import re
import shlex

from storesync.api.server import GRACEFUL_SHUTDOWN_SECONDS
from storesync.providers.klaviyo import REPORTS_PER_SYNC
from storesync.providers.shopify_queries import ORDERS_PAGE, orders_page_size, requested_cost
from storesync.settings import Settings
from storesync.storage import connect
from storesync.stores import STANDARD_PERIODS
from tests.deploy.support import ENV_EXAMPLE, GUIDE, UNITS, guide_block, read_env_file, read_unit

DAY = 86_400
#: Shopify's buckets by plan (docs: API-FACTS.md): points and restore rate a second.
STANDARD = (2_000, 100)
PLUS = (20_000, 1_000)
#: The guide's worked example of the concurrency limit.
EXAMPLE_STORES = 1_000
EXAMPLE_SYNC_SECONDS = 20


def default(name: str) -> float:
    """A setting's default, whatever this process's environment says."""
    value = Settings.model_fields[name].default
    assert isinstance(value, (int, float))
    return value


def example_setting(name: str) -> float:
    return float(read_env_file(ENV_EXAMPLE)[f"STORESYNC_{name.upper()}"])


def worker_concurrency() -> int:
    argv = shlex.split(read_unit(UNITS / "storesync-worker@.service")["Service"]["ExecStart"])
    return int(argv[argv.index("--concurrency") + 1])


def connections_per_process() -> int:
    # Creating the engine opens no connection: the pool's limits are all this needs.
    database = connect(Settings(database_url="postgresql://sizing@127.0.0.1/sizing"))
    pool = database.engine.sync_engine.pool
    return int(pool.size()) + int(pool._max_overflow) + 1  # type: ignore[attr-defined]  # + listener


def computed() -> dict[str, str]:
    """Every row of the guide's sizing table, from the code."""
    periods = len(STANDARD_PERIODS)
    daily = int(default("klaviyo_daily_report_budget"))
    per_minute = int(default("klaviyo_reports_per_minute"))
    ttl = default("cache_ttl_seconds")
    example_ttl = example_setting("cache_ttl_seconds")
    timeout = default("job_timeout_seconds")
    scheduled = periods * DAY / ttl
    calls = scheduled * REPORTS_PER_SYNC
    example_calls = periods * DAY / example_ttl * REPORTS_PER_SYNC
    point_per_order = requested_cost(ORDERS_PAGE, {"first": 1, "query": ""}) - requested_cost(
        ORDERS_PAGE, {"first": 0, "query": ""}
    )
    standard = math.floor((timeout * STANDARD[1] + STANDARD[0]) / point_per_order)
    plus = math.floor((timeout * PLUS[1] + PLUS[0]) / point_per_order)
    in_flight = math.ceil(EXAMPLE_STORES * periods * EXAMPLE_SYNC_SECONDS / example_ttl)
    rows = {
        "Klaviyo report calls per sync": REPORTS_PER_SYNC,
        "syncs per Klaviyo account per minute": per_minute // REPORTS_PER_SYNC,
        "syncs per Klaviyo account per day": daily // REPORTS_PER_SYNC,
        "scheduled syncs per store per day, default TTL": scheduled,
        "Klaviyo report calls per store per day, default TTL": calls,
        "hours into the UTC day when that spends the 225": f"{24 * daily / calls:.1f}",
        "smallest TTL that fits the daily budget, seconds": math.ceil(
            periods * REPORTS_PER_SYNC * DAY / daily
        ),
        f"Klaviyo report calls per store per day, TTL {example_ttl:.0f}": example_calls,
        f"Klaviyo report calls left per day for users and webhooks, TTL {example_ttl:.0f}": (
            daily - example_calls
        ),
        "Shopify cost points per order": point_per_order,
        "orders per Shopify page": orders_page_size(),
        "orders one attempt can page through, Shopify Standard": standard,
        "orders one attempt can page through, Shopify Plus": plus,
        "orders a day a 31-day chunk can hold, Shopify Standard": standard
        // int(default("sync_chunk_days")),
        "orders above which a chunk is fetched as a bulk operation": int(
            default("shopify_bulk_threshold")
        ),
        f"jobs in flight for 1,000 stores, TTL {example_ttl:.0f}, 20 s a sync": in_flight,
        f"worker processes for that, at `--concurrency {worker_concurrency()}`": math.ceil(
            in_flight / worker_concurrency()
        ),
        "PostgreSQL connections per storesync process, at most": connections_per_process(),
    }
    return {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in rows.items()}


def guide_rows() -> list[tuple[str, str, str]]:
    """The guide's sizing table: (quantity, how, value) rows."""
    text = GUIDE.read_text()
    table = text.split("<!-- sizing-table -->\n", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return [(quantity, how, value) for quantity, how, value in rows]


def arithmetic(how: str) -> float | None:
    """The value of a "how" cell's arithmetic ("288 × 2", "(600 s × 100 points/s + 2,000) ÷ 11"),
    its words left out; None when it has none."""
    if not re.search(r"[×÷+−]", how):
        return None
    expression = re.sub(r"(\d),(\d{3})", r"\1\2", how)
    expression = expression.replace("×", "*").replace("÷", "/").replace("−", "-")
    expression = re.sub(r"[^0-9.+\-*/() ]", " ", expression.replace("points/s", ""))
    return float(eval(expression))  # digits and operators only


def test_the_sizing_table_is_computed_from_the_code() -> None:
    rows = guide_rows()
    assert {quantity: value for quantity, _, value in rows} == computed()
    # The arithmetic shown beside each value gives that value (before rounding).
    for quantity, how, value in rows:
        result = arithmetic(how)
        if result is not None:
            assert abs(result - float(value)) < 1, f"{quantity}: {how} is {result}, not {value}"


def test_the_numbers_quoted_around_the_table_are_the_tables() -> None:
    rows = computed()
    text = GUIDE.read_text()
    quoted = {
        r"that is (\d+) report calls a day per store": rows[
            "Klaviyo report calls per store per day, default TTL"
        ],
        r"runs\s+out about ([\d.]+) hours": rows["hours into the UTC day when that spends the 225"],
        r"which is (\d+) s for the three standard periods": rows[
            "smallest TTL that fits the daily budget, seconds"
        ],
        r"3600 s leaves (\d+) report calls": rows[
            "Klaviyo report calls left per day for users and webhooks, TTL 3600"
        ],
        r"that is about ([\d,]+)\s+orders": rows[
            "orders one attempt can page through, Shopify Standard"
        ],
        r"more than about (\d+) orders a day": rows[
            "orders a day a 31-day chunk can hold, Shopify Standard"
        ],
        r"that is (\d+) jobs": rows["jobs in flight for 1,000 stores, TTL 3600, 20 s a sync"],
        r"and (\d+) worker processes": rows["worker processes for that, at `--concurrency 3`"],
        r"opens at most (\d+) connections": rows[
            "PostgreSQL connections per storesync process, at most"
        ],
        r"Allow (\d+) per process": rows["PostgreSQL connections per storesync process, at most"],
    }
    for pattern, value in quoted.items():
        found = re.findall(pattern, text)
        assert found, f"the guide no longer says {pattern!r}"
        assert {f.replace(",", "") for f in found} == {value}, pattern
    workers = int(rows["worker processes for that, at `--concurrency 3`"])
    need = int(re.findall(r"the API and (\d+) workers need (\d+)", text)[0][1])
    assert need == (workers + 1) * int(
        rows["PostgreSQL connections per storesync process, at most"]
    )


def test_the_env_example_fits_the_budgets_and_the_units_stop_in_time() -> None:
    rows = computed()
    example = read_env_file(ENV_EXAMPLE)
    # The example's TTL keeps the scheduler within Klaviyo's daily budget.
    ttl = float(example["STORESYNC_CACHE_TTL_SECONDS"])
    assert ttl >= float(rows["smallest TTL that fits the daily budget, seconds"])
    # Its comment quotes the default TTL's cost and Klaviyo's limit.
    comment = ENV_EXAMPLE.read_text()
    spend = re.search(
        r"spend (\d+) Klaviyo report calls a day.*?Klaviyo allows (\d+)", comment, re.S
    )
    assert spend, "the env example's TTL comment changed"
    assert spend[1] == rows["Klaviyo report calls per store per day, default TTL"]
    assert int(spend[2]) == default("klaviyo_daily_report_budget")
    # The workers the guide starts reach the example's global limit.
    started = re.findall(r"storesync-worker@\d+\.service", guide_block("start"))
    limit = int(example["STORESYNC_MAX_CONCURRENT_JOBS"])
    assert len(started) * worker_concurrency() >= limit
    # systemd waits longer than the shutdown grace (workers) and uvicorn's (API).
    worker_stop = float(read_unit(UNITS / "storesync-worker@.service")["Service"]["TimeoutStopSec"])
    assert worker_stop > float(example["STORESYNC_SHUTDOWN_GRACE_SECONDS"]) + 5
    api_stop = float(read_unit(UNITS / "storesync-api.service")["Service"]["TimeoutStopSec"])
    assert api_stop > GRACEFUL_SHUTDOWN_SECONDS + 5
    assert f"TimeoutStopSec={worker_stop:g}" in GUIDE.read_text()

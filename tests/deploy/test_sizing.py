"""The guide's sizing figures are the code's: computed here from the defaults and the limits."""

from __future__ import annotations

import math
import re
import shlex

from storesync.cache import (
    KLAVIYO_REPORTS_PER_REFRESH,
    KLAVIYO_SCHEDULED_SHARE,
    klaviyo_refresh_seconds,
)
from storesync.providers.klaviyo import REPORTS_PER_SYNC
from storesync.providers.shopify_queries import ORDERS_PAGE, orders_page_size, requested_cost
from storesync.server import GRACEFUL_SHUTDOWN_SECONDS
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
#: The guide's example of stores that share one Klaviyo account.
SHARING_STORES = 2


def default(name: str) -> float:
    """A setting's default, whatever this process's environment says."""
    value = Settings.model_fields[name].default
    assert isinstance(value, (int, float))
    return value


def refresh_seconds(periods: int) -> float:
    """How long Klaviyo's figures stay fresh for ``periods`` refresh periods, at the defaults
    (and so, for stores sharing one account, the smallest TTL that fits all their periods)."""
    settings = Settings(
        cache_ttl_seconds=default("cache_ttl_seconds"),
        klaviyo_daily_report_budget=int(default("klaviyo_daily_report_budget")),
    )
    return klaviyo_refresh_seconds(settings, periods)


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
    timeout = default("job_timeout_seconds")
    reports = KLAVIYO_REPORTS_PER_REFRESH
    # The scheduler refreshes Klaviyo's figures every `klaviyo_interval`, Shopify's every TTL.
    klaviyo_interval = refresh_seconds(periods)
    spend = periods * reports * DAY / klaviyo_interval  # scheduled report calls a store a day
    today_spend = 1 * reports * DAY / refresh_seconds(1)
    # A period is synced when either provider's figures expire: after TTL, 2 × TTL, … and at
    # each Klaviyo refresh, which refreshes both; so ⌈interval ÷ TTL⌉ syncs per interval.
    between_syncs = klaviyo_interval / math.ceil(klaviyo_interval / ttl)
    point_per_order = requested_cost(ORDERS_PAGE, {"first": 1, "query": ""}) - requested_cost(
        ORDERS_PAGE, {"first": 0, "query": ""}
    )
    standard = math.floor((timeout * STANDARD[1] + STANDARD[0]) / point_per_order)
    plus = math.floor((timeout * PLUS[1] + PLUS[0]) / point_per_order)
    in_flight = math.ceil(EXAMPLE_STORES * periods * EXAMPLE_SYNC_SECONDS / between_syncs)
    sharing = SHARING_STORES
    rows = {
        "Klaviyo report calls per Klaviyo refresh": reports,
        "Klaviyo refreshes per account per minute": per_minute // reports,
        "Klaviyo refreshes per account per day": daily // reports,
        "share of the daily budget the scheduler plans on": KLAVIYO_SCHEDULED_SHARE,
        "Shopify refresh interval of a recent period, seconds": ttl,
        f"Klaviyo refresh interval of a recent period, {periods} standard periods, seconds": (
            math.ceil(klaviyo_interval)
        ),
        "scheduled Klaviyo report calls per store per day, at most": math.floor(spend),
        "Klaviyo report calls left per day for forced refreshes and webhooks": (
            daily - math.floor(spend)
        ),
        "scheduled Klaviyo report calls per store per day, `--periods today`": math.floor(
            today_spend
        ),
        f"hours into the UTC day when {sharing} stores of {periods} periods sharing one "
        f"Klaviyo account spend its {daily}": f"{24 * daily / (sharing * spend):.1f}",
        f"smallest TTL for {sharing} stores of {periods} periods sharing one Klaviyo account, "
        "seconds": math.ceil(refresh_seconds(sharing * periods)),
        f"smallest TTL for {sharing} stores sharing one Klaviyo account, `--periods today`, "
        "seconds": math.ceil(refresh_seconds(sharing)),
        "Shopify cost points per order": point_per_order,
        "orders per Shopify page": orders_page_size(),
        "orders one attempt can page through, Shopify Standard": standard,
        "orders one attempt can page through, Shopify Plus": plus,
        "orders a day a 31-day chunk can hold, Shopify Standard": standard
        // int(default("sync_chunk_days")),
        "orders above which a chunk is fetched as a bulk operation": int(
            default("shopify_bulk_threshold")
        ),
        f"average seconds between scheduled syncs of a period, {periods} standard periods": (
            round(between_syncs)
        ),
        f"jobs in flight for 1,000 stores of {periods} periods, 20 s a sync": in_flight,
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
    """The value of a "how" cell's arithmetic ("288 × 2", "(600 s × 100 points/s + 2,000) ÷ 11",
    "2,560 ÷ ⌈2,560 ÷ 900⌉"), its words left out; None when it has none."""
    if not re.search(r"[×÷+−]", how):
        return None
    expression = re.sub(r"(\d),(\d{3})", r"\1\2", how)
    expression = expression.replace("×", "*").replace("÷", "/").replace("−", "-")
    expression = expression.replace("⌈", "-(-(").replace("⌉", ") // 1)")  # ⌈x⌉ = -(-x // 1)
    expression = re.sub(r"[^0-9.+\-*/() ]", " ", expression.replace("points/s", ""))
    return float(eval(expression))  # digits and operators only


def test_the_sizing_table_is_computed_from_the_code() -> None:
    # The pacing counts what a Klaviyo refresh really reserves.
    assert KLAVIYO_REPORTS_PER_REFRESH == REPORTS_PER_SYNC
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
        r"Shopify's expire after `STORESYNC_CACHE_TTL_SECONDS` \((\d+) s": rows[
            "Shopify refresh interval of a recent period, seconds"
        ],
        r"that is (\d+) s\s+for the three standard periods": rows[
            "Klaviyo refresh interval of a recent period, 3 standard periods, seconds"
        ],
        r"spends at most (\d+) report calls a day": rows[
            "scheduled Klaviyo report calls per store per day, at most"
        ],
        r"plan 2 × (\d+) calls a day": rows[
            "scheduled Klaviyo report calls per store per day, at most"
        ],
        r"leaves (\d+) for forced refreshes": rows[
            "Klaviyo report calls left per day for forced refreshes and webhooks"
        ],
        r"still (\d+)\s+report calls a day for `today` alone": rows[
            "scheduled Klaviyo report calls per store per day, `--periods today`"
        ],
        r"runs out about ([\d.]+) hours": rows[
            "hours into the UTC day when 2 stores of 3 periods sharing one Klaviyo account "
            "spend its 225"
        ],
        r"which is (\d+) s for two stores": rows[
            "smallest TTL for 2 stores of 3 periods sharing one Klaviyo account, seconds"
        ],
        r"`today` need (\d+) s": rows[
            "smallest TTL for 2 stores sharing one Klaviyo account, `--periods today`, seconds"
        ],
        r"that is about ([\d,]+)\s+orders": rows[
            "orders one attempt can page through, Shopify Standard"
        ],
        r"more than about (\d+) orders a day": rows[
            "orders a day a 31-day chunk can hold, Shopify Standard"
        ],
        r"about one every (\d+) s": rows[
            "average seconds between scheduled syncs of a period, 3 standard periods"
        ],
        r"÷ (\d+) s × average duration": rows[
            "average seconds between scheduled syncs of a period, 3 standard periods"
        ],
        r"that is (\d+) jobs": rows["jobs in flight for 1,000 stores of 3 periods, 20 s a sync"],
        r"`STORESYNC_MAX_CONCURRENT_JOBS=(\d+)` or a little more": rows[
            "jobs in flight for 1,000 stores of 3 periods, 20 s a sync"
        ],
        r"and (\d+) worker\s+processes": rows["worker processes for that, at `--concurrency 3`"],
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


def test_the_guides_advice_for_stores_sharing_a_klaviyo_account_fits_its_budget() -> None:
    daily = int(default("klaviyo_daily_report_budget"))
    planned = KLAVIYO_SCHEDULED_SHARE * daily

    def spend(stores: int, periods: int, ttl: float) -> float:
        """Scheduled report calls a day of ``stores`` stores of one account, each pacing
        itself (cache.klaviyo_refresh_seconds) as the pipeline does."""
        settings = Settings(cache_ttl_seconds=ttl, klaviyo_daily_report_budget=daily)
        interval = klaviyo_refresh_seconds(settings, periods)
        return stores * periods * KLAVIYO_REPORTS_PER_REFRESH * DAY / interval

    ttl = default("cache_ttl_seconds")
    periods = len(STANDARD_PERIODS)
    assert spend(1, periods, ttl) <= planned  # one store fits at the default TTL
    # Two stores of one account overspend at the default TTL, with fewer periods too.
    assert spend(SHARING_STORES, periods, ttl) > daily
    assert spend(SHARING_STORES, 1, ttl) > daily
    # At the TTL the guide gives, they fit.
    for stores_periods in (periods, 1):
        smallest = float(math.ceil(refresh_seconds(SHARING_STORES * stores_periods)))
        assert spend(SHARING_STORES, stores_periods, smallest) <= planned


def test_the_env_example_fits_the_budgets_and_the_units_stop_in_time() -> None:
    rows = computed()
    example = read_env_file(ENV_EXAMPLE)
    # The example's TTL is the default the table assumes, which fits Klaviyo's daily budget.
    ttl = float(example["STORESYNC_CACHE_TTL_SECONDS"])
    assert ttl == default("cache_ttl_seconds")
    # Its comment quotes the table's Klaviyo figures.
    comment = ENV_EXAMPLE.read_text()
    quoted = re.search(
        r"fresh for this TTL \((\d+) s, the default\).*?Klaviyo's (\d+) report calls a day"
        r".*?: (\d+) s for a store's (\d+) standard periods.*?at most (\d+) report calls a day"
        r".*?leaves (\d+) for forced refreshes",
        comment,
        re.S,
    )
    assert quoted, "the env example's TTL comment changed"
    assert list(quoted.groups()) == [
        rows["Shopify refresh interval of a recent period, seconds"],
        str(int(default("klaviyo_daily_report_budget"))),
        rows["Klaviyo refresh interval of a recent period, 3 standard periods, seconds"],
        str(len(STANDARD_PERIODS)),
        rows["scheduled Klaviyo report calls per store per day, at most"],
        rows["Klaviyo report calls left per day for forced refreshes and webhooks"],
    ]
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

"""Klaviyo's Query Metric Aggregates (``POST /api/metric-aggregates``) for revision 2026-10-15.

The body is validated as the revision's ``MetricAggregateQuery`` defines it: ``metric_id``,
``measurements`` (``count``, ``sum_value``, ``unique``), ``interval`` (``hour``, ``day``,
``week``, ``month``; default ``day``), ``by`` (the revision's dimension list), ``filter`` (a
list that must bound ``datetime`` with ``greater-or-equal`` and ``less-than``; other entries
filter on dimensions with ``equals``/``contains-any``), ``timezone`` (IANA, default ``UTC``),
``page_size`` (1-500, default 500), ``page_cursor``, ``sort`` and ``return_fields``. Any other
key is refused, as Klaviyo refuses it.

The events are the "Placed Order" events of the store's non-test orders (value: the order's
original total, the value the values reports' conversions use), dated by the order's creation
(the conversion date, not the message's send date). ``$attributed_message``,
``$attributed_flow``, ``$attributed_channel`` and ``$value_currency`` are known for every
event; an event without the property (an unattributed order, or a campaign's order grouped by
flow) and every other dimension of the revision group under ``""``. Other metrics have no
events. ``dates`` are the starts of the calendar hours, days, weeks (from Monday) and months
in ``timezone`` that the range touches, and each row's measurements are lists aligned with
them; only events inside ``[start, end)`` count.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from storesync.simulator.data import TEST_FLAG, StoreData
from storesync.simulator.klaviyo_filters import FilterError, Predicate, compile_filter
from storesync.simulator.klaviyo_reports import ReportError, decode_page

MEASUREMENTS = ("count", "sum_value", "unique")
INTERVALS = frozenset({"hour", "day", "week", "month"})
#: The ``by`` values revision 2026-10-15 accepts (MetricAggregateQueryResourceObjectAttributes).
DIMENSIONS = frozenset(
    (
        "$attributed_channel", "$attributed_flow", "$attributed_message",
        "$attributed_variation", "$campaign_channel", "$flow", "$flow_channel", "$message",
        "$message_send_cohort", "$usage_amount", "$value_currency", "$variation",
        "$variation_send_cohort", "Bot Click", "Bounce Type", "Campaign Name",
        "Client Canonical", "Client Name", "Client Type", "Email Domain", "Failure Source",
        "Failure Type", "From Number", "From Phone Region", "Inbox Provider", "List",
        "Message Format", "Message Name", "Message Type", "Method", "Segment Count", "Subject",
        "To Number", "To Phone Region", "URL", "form_id",
    )
)  # fmt: skip
#: The dimensions the simulator knows for Placed Order events; the others group under "".
KNOWN_DIMENSIONS = ("$attributed_message", "$attributed_flow", "$attributed_channel")
BODY_KEYS = {
    "": frozenset({"data"}),
    "/data": frozenset({"type", "attributes"}),
    "/data/attributes": frozenset(
        {
            "metric_id",
            "page_cursor",
            "measurements",
            "interval",
            "page_size",
            "by",
            "return_fields",
            "filter",
            "timezone",
            "sort",
        }
    ),
}
MAX_PAGE_SIZE = 500
MAX_RANGE = timedelta(days=366, hours=2)  # a year, with room for a DST hour
# Klaviyo's description names these as the IANA zones it does not take.
_UNSUPPORTED_ZONES = frozenset({"Factory", "Europe/Kyiv", "Pacific/Kanton"})
_BOUND = re.compile(r"^\s*([a-z-]+)\(\s*datetime\s*,\s*['\"]?([^'\")]+?)['\"]?\s*\)\s*$")
_ATTRS = "/data/attributes"
_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    """A validated metric-aggregates request."""

    metric_id: str
    measurements: tuple[str, ...]
    interval: str
    by: tuple[str, ...]
    start: int
    end: int
    tz: ZoneInfo
    keep: Predicate | None
    sort: str | None
    page_size: int
    offset: int


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) - _UNSUPPORTED_ZONES


def _list_of_strings(attrs: dict[str, Any], key: str, *, required: bool) -> list[str]:
    value = attrs.get(key)
    if value is None and not required:
        return []
    if required and (value is None or value == []):
        raise ReportError(f"'{key}' is required.", f"{_ATTRS}/{key}")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReportError(f"'{key}' must be a list of strings.", f"{_ATTRS}/{key}")
    return value


def _instant(text: str, tz: ZoneInfo, pointer: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"'{text}' is not a valid ISO 8601 datetime.", pointer) from None
    if moment.tzinfo is None:  # a datetime without an offset is in the query's time zone
        moment = moment.replace(tzinfo=tz)
    if not _EARLIEST <= moment <= _LATEST:  # local times near year 1 or 9999 cannot be shown
        raise ReportError(f"'{text}' is out of range (1970 to 2100).", pointer)
    return int(moment.timestamp())


def _bounds(filters: list[str], tz: ZoneInfo) -> tuple[int, int, list[str]]:
    """The ``[start, end)`` of the datetime filters, and the other filter entries."""
    found: dict[str, int] = {}
    others = []
    for n, text in enumerate(filters):
        match = _BOUND.match(text)
        if match is None:
            if re.search(r"\(\s*datetime\s*,", text):
                raise ReportError(f"Invalid filter on datetime: {text!r}.", f"{_ATTRS}/filter/{n}")
            others.append(text)
            continue
        operator, value = match.groups()
        if operator not in ("greater-or-equal", "less-than"):
            raise ReportError(
                f"'{operator}' is not a valid operator for 'datetime'; use greater-or-equal and "
                "less-than.",
                f"{_ATTRS}/filter/{n}",
            )
        if operator in found:
            raise ReportError(
                f"'datetime' has more than one '{operator}' filter.", f"{_ATTRS}/filter/{n}"
            )
        found[operator] = _instant(value, tz, f"{_ATTRS}/filter/{n}")
    if len(found) < 2:
        raise ReportError(
            "The filter must bound 'datetime' with greater-or-equal and less-than.",
            f"{_ATTRS}/filter",
        )
    start, end = found["greater-or-equal"], found["less-than"]
    if end <= start:
        raise ReportError("The datetime range's end must be after its start.", f"{_ATTRS}/filter")
    if end - start > MAX_RANGE.total_seconds():
        raise ReportError("The datetime range cannot be longer than 1 year.", f"{_ATTRS}/filter")
    return start, end, others


def _refuse_unknown_keys(body: Any) -> None:
    node, pointer = body, ""
    for child in ("data", "attributes", None):
        if not isinstance(node, dict):
            return
        for key in node:
            if key not in BODY_KEYS[pointer]:
                raise ReportError(f"'{key}' is not a valid field.", f"{pointer}/{key}")
        if child is None:
            return
        node, pointer = node.get(child), f"{pointer}/{child}"


def parse_query(body: Any, data: StoreData) -> AggregateQuery:
    """Validate a metric-aggregates body; :class:`ReportError` names what is wrong."""
    _refuse_unknown_keys(body)
    node = body.get("data") if isinstance(body, dict) else None
    if not isinstance(node, dict) or node.get("type") != "metric-aggregate":
        raise ReportError("The resource type must be 'metric-aggregate'.", "/data/type")
    attrs = node.get("attributes")
    if not isinstance(attrs, dict):
        raise ReportError("attributes are required.", _ATTRS)
    metric = attrs.get("metric_id")
    if not isinstance(metric, str) or not metric:
        raise ReportError("'metric_id' is required.", f"{_ATTRS}/metric_id")
    if metric not in {m.id for m in data.klaviyo.metrics}:
        raise ReportError(f"Metric '{metric}' does not exist.", f"{_ATTRS}/metric_id")
    measurements = _list_of_strings(attrs, "measurements", required=True)
    for n, name in enumerate(measurements):
        if name not in MEASUREMENTS:
            raise ReportError(
                f"'{name}' is not a valid measurement; use one of {', '.join(MEASUREMENTS)}.",
                f"{_ATTRS}/measurements/{n}",
            )
    interval = attrs.get("interval", "day")
    if not isinstance(interval, str) or interval not in INTERVALS:
        raise ReportError(
            f"'{interval}' is not a valid interval; use hour, day, week or month.",
            f"{_ATTRS}/interval",
        )
    by = _list_of_strings(attrs, "by", required=False)
    for n, name in enumerate(by):
        if name not in DIMENSIONS:
            raise ReportError(f"'{name}' is not a valid 'by' value.", f"{_ATTRS}/by/{n}")
    _list_of_strings(attrs, "return_fields", required=False)
    zone = attrs.get("timezone", "UTC")
    if not isinstance(zone, str) or zone not in _zones():
        raise ReportError(f"'{zone}' is not a supported time zone.", f"{_ATTRS}/timezone")
    tz = ZoneInfo(zone)
    filters = _list_of_strings(attrs, "filter", required=True)
    start, end, others = _bounds(filters, tz)
    keep = _dimension_filter(others)
    sort = attrs.get("sort")
    if sort is not None and (
        not isinstance(sort, str) or sort.lstrip("-") not in (*by, *measurements)
    ):
        raise ReportError(
            f"'{sort}' is not a valid sort; sort by a 'by' value or a requested measurement.",
            f"{_ATTRS}/sort",
        )
    size = attrs.get("page_size", MAX_PAGE_SIZE)
    if type(size) is not int or not 1 <= size <= MAX_PAGE_SIZE:
        raise ReportError(
            f"'page_size' must be an integer between 1 and {MAX_PAGE_SIZE}.",
            f"{_ATTRS}/page_size",
        )
    cursor = attrs.get("page_cursor")
    try:
        if cursor is not None and not isinstance(cursor, str):
            raise ReportError("The page cursor is invalid.")
        offset = decode_page(cursor)
    except ReportError:
        raise ReportError("The page cursor is invalid.", f"{_ATTRS}/page_cursor") from None
    return AggregateQuery(
        metric, tuple(measurements), interval, tuple(by), start, end, tz, keep, sort, size, offset
    )


def _dimension_filter(texts: list[str]) -> Predicate | None:
    if not texts:
        return None
    fields: dict[str, Callable[[dict[str, Any]], Any]] = {n: itemgetter(n) for n in DIMENSIONS}
    operators = dict.fromkeys(fields, frozenset({"equals", "contains-any"}))
    try:
        checks = [compile_filter(text, fields, "metric-aggregate", operators) for text in texts]
    except FilterError as err:
        raise ReportError(str(err), f"{_ATTRS}/filter") from None
    return lambda event: all(check(event) for check in checks)


def bucket_starts(start: int, end: int, interval: str, tz: ZoneInfo) -> list[int]:
    """UTC instants starting each calendar hour/day/week/month in ``tz`` that ``[start, end)``
    touches (days, weeks and months start at local midnight, so a DST day has 23 or 25 hours)."""
    local = datetime.fromtimestamp(start, tz)
    if interval == "hour":
        first = int(local.replace(minute=0, second=0, microsecond=0).timestamp())
        return list(range(first, end, 3600))
    day = local.date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    out: list[int] = []
    while True:
        instant = int(datetime.combine(day, datetime.min.time(), tzinfo=tz).timestamp())
        if instant >= end:
            return out
        out.append(instant)
        if interval == "month":
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            day += timedelta(days=7 if interval == "week" else 1)


def _event_dimensions(data: StoreData, message: int) -> dict[str, str]:
    k = data.klaviyo
    values = dict.fromkeys(DIMENSIONS, "")
    values["$value_currency"] = data.spec.currency
    if message >= 0:
        m = k.messages[message]
        values["$attributed_message"] = m.id
        values["$attributed_channel"] = m.channel
        if not any(c.id == m.owner for c in k.campaigns):
            values["$attributed_flow"] = m.owner
    return values


def aggregate(data: StoreData, query: AggregateQuery) -> tuple[list[str], list[dict[str, Any]]]:
    """The ``dates`` and every row (sorted, not yet paged) of the answer."""
    starts = bucket_starts(query.start, query.end, query.interval, query.tz)
    dates = [datetime.fromtimestamp(ts, query.tz).isoformat() for ts in starts]
    width = len(starts)
    # Per row: counts and cents per bucket, and the (bucket, profile) pairs seen.
    rows: dict[tuple[str, ...], tuple[list[int], list[int], set[tuple[int, int]]]] = {}
    if not query.by:
        rows[()] = ([0] * width, [0] * width, set())
    o = data.orders
    dimensions_of = functools.lru_cache(maxsize=None)(functools.partial(_event_dimensions, data))
    if query.metric_id == data.klaviyo.placed_order_metric:
        for i in range(*data.created_range(query.start, query.end)):
            if o.flags[i] & TEST_FLAG:
                continue
            values = dimensions_of(o.attributed[i])
            if query.keep is not None and not query.keep(values):
                continue
            key = tuple(values[name] for name in query.by)
            if key not in rows:
                rows[key] = ([0] * width, [0] * width, set())
            count, cents, profiles = rows[key]
            slot = bisect_right(starts, o.created[i]) - 1
            count[slot] += 1
            cents[slot] += o.gross[i] - o.discount[i] + o.shipping[i] + o.tax[i]
            profiles.add((slot, o.customer[i] or -1 - i))  # a guest order is its own profile
    table: list[tuple[tuple[str, ...], dict[str, list[Any]]]] = []
    for key, (count, cents, profiles) in rows.items():
        unique = [0] * width
        for slot, _ in profiles:
            unique[slot] += 1
        figures: dict[str, list[Any]] = {
            "count": count,
            "sum_value": [c / 100 for c in cents],  # correctly rounded: exact to the cent
            "unique": unique,
        }
        table.append((key, {name: figures[name] for name in query.measurements}))
    table.sort(key=itemgetter(0))
    if query.sort:
        name, descending = query.sort.lstrip("-"), query.sort.startswith("-")
        if name in query.by:
            position = query.by.index(name)
            table.sort(key=lambda row: row[0][position], reverse=descending)
        else:
            table.sort(key=lambda row: sum(row[1][name]), reverse=descending)
    return dates, [{"dimensions": list(key), "measurements": m} for key, m in table]

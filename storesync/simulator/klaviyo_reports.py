"""Klaviyo's Reporting API: campaign-values and flow-values reports.

The request body is validated as Klaviyo does (statistics from the documented list, a
timeframe of at most a year given as ``{"key": …}`` or ``{"start", "end"}``, a
``conversion_metric_id`` that exists, ``group_by`` from the allowed keys). One result row per
grouping of the messages active in the timeframe; the figures are the same sums the oracle
uses (:func:`storesync.simulator.oracle.message_windows`). Conversions count only for the
"Placed Order" metric; any other metric gives zero conversions, as orders are all the
simulator tracks. Rates are fractions rounded to four places, ``conversion_value`` a number.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any

from storesync.simulator.data import StoreData
from storesync.simulator.klaviyo_filters import FilterError, compile_filter
from storesync.simulator.oracle import message_windows

STATISTICS = frozenset(
    """average_order_value bounce_rate bounced bounced_or_failed bounced_or_failed_rate
    click_rate click_to_open_rate clicks clicks_unique conversion_rate conversion_uniques
    conversion_value conversions delivered delivery_rate failed failed_rate
    message_segment_count_sum open_rate opens opens_unique recipients revenue_per_recipient
    spam_complaint_rate spam_complaints text_message_credit_usage_amount text_message_roi
    text_message_spend unsubscribe_rate unsubscribe_uniques unsubscribes""".split()
)
GROUP_BY = {
    "campaign": ("campaign_id", "campaign_message_id", "send_channel"),
    "flow": ("flow_id", "flow_message_id", "send_channel"),
}
#: The keys of a report request body that revision 2026-10-15 defines, level by level.
BODY_KEYS = {
    "": frozenset({"data"}),
    "/data": frozenset({"type", "attributes"}),
    "/data/attributes": frozenset(
        {"statistics", "timeframe", "conversion_metric_id", "group_by", "filter"}
    ),
}
_TIMEFRAMES = (frozenset({"key"}), frozenset({"start", "end"}))
MAX_TIMEFRAME = timedelta(days=366, hours=2)  # a year, with room for a DST hour


class ReportError(Exception):
    """A 400 ``invalid`` answer, with the JSON pointer of the offending input."""

    def __init__(self, detail: str, pointer: str = "/data/attributes") -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """A validated report request."""

    statistics: tuple[str, ...]
    start: int
    end: int
    conversion_metric_id: str
    group_by: tuple[str, ...]
    filter: str | None


def _timeframe_key(key: str, today: date) -> tuple[date, date]:
    """Local ``[start, end)`` dates of a named timeframe."""
    month = today.replace(day=1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    named = {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "this_week": (today - timedelta(days=today.weekday()), today + timedelta(days=1)),
        "last_week": (
            today - timedelta(days=today.weekday() + 7),
            today - timedelta(days=today.weekday()),
        ),
        "this_month": (month, today + timedelta(days=1)),
        "last_month": (last_month, month),
        "this_year": (today.replace(month=1, day=1), today + timedelta(days=1)),
        "last_year": (
            today.replace(year=today.year - 1, month=1, day=1),
            today.replace(month=1, day=1),
        ),
        "last_12_months": (today.replace(year=today.year - 1), today),
    }
    if key in named:
        return named[key]
    if key.startswith("last_") and key.endswith("_days") and key[5:-5] in ("7", "30", "90", "365"):
        return today - timedelta(days=int(key[5:-5])), today
    raise ReportError(f"'{key}' is not a valid timeframe key.", "/data/attributes/timeframe/key")


def _instant(text: Any, data: StoreData, pointer: str) -> int:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise ReportError(f"'{text}' is not a valid datetime.", pointer) from None
    if moment.tzinfo is None:  # custom ranges without an offset use the account's time zone
        moment = moment.replace(tzinfo=data.tz)
    return int(moment.timestamp())


def parse_request(body: Any, kind: str, data: StoreData, now: float) -> ReportRequest:
    """Validate a report body; ``kind`` is ``campaign`` or ``flow``."""
    report_type = f"{kind}-values-report"
    _refuse_unknown_keys(body)
    node = body.get("data") if isinstance(body, dict) else None
    if not isinstance(node, dict) or node.get("type") != report_type:
        raise ReportError(f"The resource type must be '{report_type}'.", "/data/type")
    attrs = node.get("attributes")
    if not isinstance(attrs, dict):
        raise ReportError("attributes are required.", "/data/attributes")
    statistics = attrs.get("statistics")
    if not isinstance(statistics, list) or not statistics:
        raise ReportError(
            "'statistics' is required and must be a non-empty list.", "/data/attributes/statistics"
        )
    for n, name in enumerate(statistics):
        if name not in STATISTICS:
            raise ReportError(
                f"'{name}' is not a valid choice for 'statistics'.",
                f"/data/attributes/statistics/{n}",
            )
    timeframe = attrs.get("timeframe")
    if not isinstance(timeframe, dict):
        raise ReportError("'timeframe' is required.", "/data/attributes/timeframe")
    if frozenset(timeframe) not in _TIMEFRAMES:
        raise ReportError(
            "'timeframe' needs either 'key' or 'start' and 'end', and nothing else.",
            "/data/attributes/timeframe",
        )
    if "key" in timeframe:
        today = datetime.fromtimestamp(now, data.tz).date()
        first, last = _timeframe_key(str(timeframe["key"]), today)
        start = int(datetime.combine(first, time.min, tzinfo=data.tz).timestamp())
        end = int(datetime.combine(last, time.min, tzinfo=data.tz).timestamp())
    elif "start" in timeframe and "end" in timeframe:
        start = _instant(timeframe["start"], data, "/data/attributes/timeframe/start")
        end = _instant(timeframe["end"], data, "/data/attributes/timeframe/end")
    else:
        raise ReportError(
            "'timeframe' needs either 'key' or 'start' and 'end'.", "/data/attributes/timeframe"
        )
    if end <= start:
        raise ReportError(
            "The timeframe's end must be after its start.", "/data/attributes/timeframe"
        )
    if end - start > MAX_TIMEFRAME.total_seconds():
        raise ReportError(
            "The timeframe cannot be longer than 1 year.", "/data/attributes/timeframe"
        )
    metric = attrs.get("conversion_metric_id")
    if not isinstance(metric, str) or not metric:
        raise ReportError(
            "'conversion_metric_id' is required.", "/data/attributes/conversion_metric_id"
        )
    if metric not in {m.id for m in data.klaviyo.metrics}:
        raise ReportError(
            f"Metric '{metric}' does not exist.", "/data/attributes/conversion_metric_id"
        )
    allowed = GROUP_BY[kind]
    group_by = attrs.get("group_by") or list(allowed)
    if not isinstance(group_by, list) or any(g not in allowed for g in group_by):
        raise ReportError(
            f"'group_by' must be a list of {', '.join(allowed)}.", "/data/attributes/group_by"
        )
    for required in allowed[:2]:
        if required not in group_by:
            raise ReportError(f"'group_by' must include '{required}'.", "/data/attributes/group_by")
    flt = attrs.get("filter")
    return ReportRequest(
        tuple(statistics),
        start,
        end,
        metric,
        tuple(group_by),
        flt if isinstance(flt, str) else None,
    )


def _refuse_unknown_keys(body: Any) -> None:
    """A 400 for any key the revision's request model does not define (Klaviyo refuses them
    rather than ignore them, so a request that passes here is one the revision accepts)."""
    node, pointer = body, ""
    for child in ("data", "attributes", None):
        if not isinstance(node, dict):
            return  # the type checks of parse_request name what is missing
        for key in node:
            if key not in BODY_KEYS[pointer]:
                raise ReportError(f"'{key}' is not a valid field.", f"{pointer}/{key}")
        if child is None:
            return
        node, pointer = node.get(child), f"{pointer}/{child}"


def statistic_values(sums: list[int], channel: str) -> dict[str, Any]:
    """Every statistic Klaviyo documents, from the summed counts of a grouping."""
    recipients, delivered, opens_u, clicks_u, unsubs, conversions, value_cents = sums
    value = Decimal(value_cents).scaleb(-2)
    missing = recipients - delivered
    bounced, failed = (missing, 0) if channel == "email" else (0, missing)
    spam = unsubs // 10

    def ratio(a: float, b: float, places: int = 4) -> float:
        return round(a / b, places) if b else 0.0

    return {
        "recipients": recipients,
        "delivered": delivered,
        "delivery_rate": ratio(delivered, recipients),
        "opens": opens_u + opens_u // 4,
        "opens_unique": opens_u,
        "open_rate": ratio(opens_u, delivered),
        "clicks": clicks_u + clicks_u // 5,
        "clicks_unique": clicks_u,
        "click_rate": ratio(clicks_u, delivered),
        "click_to_open_rate": ratio(clicks_u, opens_u),
        "conversions": conversions,
        "conversion_uniques": conversions,
        "conversion_value": float(value),
        "conversion_rate": ratio(conversions, delivered),
        "average_order_value": ratio(float(value), conversions, 2),
        "revenue_per_recipient": ratio(float(value), recipients, 2),
        "unsubscribes": unsubs,
        "unsubscribe_uniques": unsubs,
        "unsubscribe_rate": ratio(unsubs, delivered),
        "bounced": bounced,
        "bounce_rate": ratio(bounced, recipients),
        "failed": failed,
        "failed_rate": ratio(failed, recipients),
        "bounced_or_failed": bounced + failed,
        "bounced_or_failed_rate": ratio(bounced + failed, recipients),
        "spam_complaints": spam,
        "spam_complaint_rate": ratio(spam, delivered),
        "message_segment_count_sum": delivered if channel == "sms" else 0,
        "text_message_credit_usage_amount": delivered if channel == "sms" else 0,
        "text_message_spend": 0.0,
        "text_message_roi": 0.0,
    }


def report_rows(data: StoreData, request: ReportRequest, kind: str) -> list[dict[str, Any]]:
    """Every result row of the report, sorted by grouping."""
    messages = data.klaviyo.messages
    id_key, message_key, _ = GROUP_BY[kind]
    rows: dict[tuple[str, ...], tuple[list[int], str]] = {}
    counts_conversions = request.conversion_metric_id == data.klaviyo.placed_order_metric
    fields: dict[str, Callable[[dict[str, Any]], Any]] = {k: itemgetter(k) for k in GROUP_BY[kind]}
    operators = dict.fromkeys(fields, frozenset({"equals", "contains-any"}))
    try:
        keep = compile_filter(request.filter, fields, kind, operators) if request.filter else None
    except FilterError as error:
        raise ReportError(str(error), "/data/attributes/filter") from None
    for owner, index, s in message_windows(
        data, request.start, request.end, campaigns=kind == "campaign"
    ):
        grouping = {
            id_key: owner,
            message_key: messages[index].id,
            "send_channel": messages[index].channel,
        }
        if keep is not None and not keep(grouping):
            continue
        key = tuple(grouping[g] for g in request.group_by)
        sums, channel = rows.setdefault(key, ([0] * 7, messages[index].channel))
        conv, value = (s.conversions, s.conversion_cents) if counts_conversions else (0, 0)
        for n, amount in enumerate(
            (
                s.recipients,
                s.delivered,
                s.opens_unique,
                s.clicks_unique,
                s.unsubscribes,
                conv,
                value,
            )
        ):
            sums[n] += amount
    out = []
    for key in sorted(rows):
        sums, channel = rows[key]
        values = statistic_values(sums, channel)
        out.append(
            {
                "groupings": dict(zip(request.group_by, key, strict=True)),
                "statistics": {name: values[name] for name in request.statistics},
            }
        )
    return out


def encode_page(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_page(cursor: str | None) -> int:
    """The offset in a page cursor; :class:`ReportError` when it is not one of ours."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if text.startswith("offset:"):
            return max(0, int(text[7:]))
    except (ValueError, binascii.Error):
        pass
    raise ReportError("The page cursor is invalid.", "page_cursor")

"""Shopify's order search syntax and cursor paging over the columnar order data.

Supported terms, joined by ``AND`` (or juxtaposed): ``created_at``, ``updated_at`` and
``processed_at`` with ``>= > <= <`` or a bare value, ``test:true|false``,
``status:open|cancelled|closed|any``, ``financial_status:paid|pending|…``. Values may be
quoted. As public reports say of the real API, ``>`` and ``<`` behave like ``>=`` and ``<=``:
an order created exactly at a bound is returned by both neighbouring queries, so clients must
check ``createdAt`` against their own half-open bounds and de-duplicate. A date without a time,
or a time without an offset, is read in the shop's time zone. Unknown terms are ignored with a
warning (Shopify reports them in ``extensions.search``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from graphql import GraphQLError

from storesync.simulator.data import FINANCIAL_STATUSES, TEST_FLAG, StoreData

_TERM = re.compile(r"""(-?)([A-Za-z_]+):(>=|<=|>|<)?('[^']*'|"[^"]*"|\S+)|(\S+)""")
_DATE_FIELDS = {"created_at": "created", "processed_at": "created", "updated_at": "updated"}
IDENTITY_SORTS = ("ID", "CREATED_AT", "PROCESSED_AT", "ORDER_NUMBER")


@dataclass(slots=True)
class OrderFilter:
    """A parsed search query; bounds are inclusive epoch seconds."""

    created_min: int | None = None
    created_max: int | None = None
    updated_min: int | None = None
    updated_max: int | None = None
    test: bool | None = None
    status: str | None = None
    financial: frozenset[str] | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)
    # The query and its created_at values exactly as written (the request log shows them).
    query: str | None = None
    created_from: str | None = None
    created_to: str | None = None

    def tighten(self, name: str, low: int | None, high: int | None) -> None:
        old_low, old_high = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
        if low is not None:
            setattr(self, f"{name}_min", low if old_low is None else max(old_low, low))
        if high is not None:
            setattr(self, f"{name}_max", high if old_high is None else min(old_high, high))


def _instant(text: str, tz: ZoneInfo) -> tuple[float, bool] | None:
    """Epoch seconds of an ISO date or date-time (naive values in ``tz``), and whether a date."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    is_date = len(text) == 10
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.timestamp(), is_date


def parse_search(query: str | None, tz: ZoneInfo) -> OrderFilter:
    """Parse Shopify's search syntax (the subset described in the module docstring)."""
    flt = OrderFilter(query=query)
    for match in _TERM.finditer(query or ""):
        negated, name, op, raw, bare = match.groups()
        if bare is not None:
            if bare.upper() != "AND":
                flt.warnings.append(
                    {"field": bare, "message": "Free-text and OR/NOT terms are ignored."}
                )
            continue
        value = raw.strip("'\"")
        if negated:
            flt.warnings.append({"field": name, "message": "Negated terms are ignored."})
        elif name in _DATE_FIELDS:
            _date_term(flt, _DATE_FIELDS[name], op or "", value, tz)
            if name != "updated_at":
                if op in (None, ">=", ">"):
                    flt.created_from = value
                if op in (None, "<=", "<"):
                    flt.created_to = value
        elif name == "test" and value in ("true", "false"):
            flt.test = value == "true"
        elif name == "status" and value in ("open", "cancelled", "closed", "any"):
            flt.status = None if value == "any" else value
        elif name == "financial_status" and value.upper() in FINANCIAL_STATUSES:
            flt.financial = (flt.financial or frozenset()) | {value.upper()}
        else:
            flt.warnings.append({"field": name, "message": "Invalid search field for this query."})
    return flt


def _date_term(flt: OrderFilter, name: str, op: str, value: str, tz: ZoneInfo) -> None:
    parsed = _instant(value, tz)
    if parsed is None:
        flt.warnings.append({"field": name, "message": f"Input `{value}` is not a valid date."})
        return
    instant, is_date = parsed
    if op in (">=", ">"):  # ">" is inclusive in practice
        flt.tighten(name, math.ceil(instant), None)
    elif op in ("<=", "<"):  # "<" is inclusive in practice
        flt.tighten(name, None, math.floor(instant))
    elif is_date:
        start = datetime.fromisoformat(value).replace(tzinfo=tz)
        end = (start + timedelta(days=1)).timestamp()
        flt.tighten(name, math.ceil(instant), math.ceil(end) - 1)
    else:
        flt.tighten(name, math.ceil(instant), math.floor(instant))


@dataclass(slots=True)
class Selection:
    """The orders a query selects, in the requested order.

    Positions ``lo..hi`` index ``sequence`` (``None``: positions are order indices, sorted by
    creation); ``predicate`` filters what bisection could not.
    """

    data: StoreData
    lo: int
    hi: int
    reverse: bool
    sequence: Sequence[int] | None
    rank: Sequence[int] | None
    predicate: Callable[[int], bool] | None

    def order_at(self, k: int) -> int:
        """The order index at logical position ``k`` (0 = first in the requested order)."""
        position = self.hi - 1 - k if self.reverse else self.lo + k
        return position if self.sequence is None else self.sequence[position]

    def logical(self, index: int) -> int:
        """The logical position of order ``index`` (may fall outside ``0..len``)."""
        position = index if self.rank is None else self.rank[index]
        return self.hi - 1 - position if self.reverse else position - self.lo

    def __len__(self) -> int:
        return max(0, self.hi - self.lo)

    def matches(self, k: int) -> bool:
        return self.predicate is None or self.predicate(self.order_at(k))

    def count(self, limit: int | None = None) -> int:
        if self.predicate is None:
            return len(self)
        found = 0
        for k in range(len(self)):
            found += self.matches(k)
            if limit is not None and found > limit:
                break
        return found

    def iter_orders(self) -> list[int] | range:
        """Every selected order index, in order (used by bulk operations)."""
        if self.predicate is None and self.sequence is None and not self.reverse:
            return range(self.lo, self.hi)
        return [self.order_at(k) for k in range(len(self)) if self.matches(k)]


def select(
    data: StoreData, flt: OrderFilter, sort_key: str, reverse: bool, visible_since: int | None
) -> Selection:
    """Build the selection for a filter and sort key."""
    o = data.orders
    checks: list[Callable[[int], bool]] = []
    created_min = flt.created_min
    if visible_since is not None:  # without read_all_orders, only the last 60 days exist
        created_min = visible_since if created_min is None else max(created_min, visible_since)
    if sort_key in IDENTITY_SORTS or sort_key == "RELEVANCE":
        sequence = rank = None
        lo = 0 if created_min is None else bisect_left(o.created, created_min)
        hi = len(o) if flt.created_max is None else bisect_right(o.created, flt.created_max)
        _range_check(checks, o.updated, flt.updated_min, flt.updated_max)
    elif sort_key == "UPDATED_AT":
        sequence, rank = data.updated_order()
        updated = o.updated
        lo = (
            0
            if flt.updated_min is None
            else bisect_left(sequence, flt.updated_min, key=updated.__getitem__)
        )
        hi = (
            len(o)
            if flt.updated_max is None
            else bisect_right(sequence, flt.updated_max, key=updated.__getitem__)
        )
        _range_check(checks, o.created, created_min, flt.created_max)
    else:
        raise GraphQLError(f"Sorting orders by {sort_key} is not supported by the simulator.")
    if flt.test is not None:
        wanted = flt.test
        checks.append(lambda i: bool(o.flags[i] & TEST_FLAG) == wanted)
    if flt.status == "cancelled":
        checks.append(lambda i: o.cancelled[i] != 0)
    elif flt.status == "open":
        checks.append(lambda i: o.cancelled[i] == 0)
    elif flt.status == "closed":
        checks.append(lambda i: o.cancelled[i] == 0 and data.financial_status(i) != "PENDING")
    if flt.financial is not None:
        allowed = flt.financial
        checks.append(lambda i: data.financial_status(i) in allowed)
    predicate = None
    if checks:

        def predicate(i: int) -> bool:
            return all(check(i) for check in checks)

    return Selection(data, lo, max(lo, hi), reverse, sequence, rank, predicate)


def _range_check(
    checks: list[Callable[[int], bool]], values: Sequence[int], low: int | None, high: int | None
) -> None:
    if low is not None:
        checks.append(lambda i: values[i] >= low)
    if high is not None:
        checks.append(lambda i: values[i] <= high)


def encode_cursor(data: StoreData, index: int, sort_key: str) -> str:
    """An opaque cursor, shaped like Shopify's (base64 of last_id and last_value)."""
    column = data.orders.updated if sort_key == "UPDATED_AT" else data.orders.created
    payload = {"last_id": data.id_base + index, "last_value": column[index]}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_cursor(data: StoreData, cursor: str) -> int:
    """The order index a cursor points at, or a GraphQL error like Shopify's."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        index = data.order_index_of(int(payload["last_id"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        index = None
    if index is None:
        raise GraphQLError("Invalid cursor for current pagination sort.")
    return index


def page(
    sel: Selection,
    first: int | None,
    last: int | None,
    after: int | None,
    before: int | None,
) -> tuple[list[int], bool, bool]:
    """Order indices of one page, hasNextPage and hasPreviousPage (Relay semantics)."""
    size = len(sel)
    start = 0 if after is None else min(size, max(0, sel.logical(after) + 1))
    stop = size if before is None else min(size, max(0, sel.logical(before)))
    picked: list[int] = []
    if first is not None:
        k = start
        while k < stop and len(picked) < first:
            if sel.matches(k):
                picked.append(k)
            k += 1
        if last is not None:
            picked = picked[max(0, len(picked) - last) :]
    else:
        assert last is not None
        k = stop - 1
        while k >= start and len(picked) < last:
            if sel.matches(k):
                picked.append(k)
            k -= 1
        picked.reverse()
    low = picked[0] if picked else start
    high = picked[-1] + 1 if picked else stop
    has_previous = any(sel.matches(k) for k in range(low - 1, -1, -1))
    has_next = any(sel.matches(k) for k in range(high, size))
    return [sel.order_at(k) for k in picked], has_next, has_previous

"""The campaign and flow tables: rows formatted for display, sorted on the server.

Sorting is a link per column header (``?csort=open_rate&cdir=asc`` for campaigns, ``fsort`` /
``fdir`` for flows), so it works with the keyboard and without scripts, and the header says
how the table is sorted (``aria-sort``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from storesync.web import format as fmt

#: Column key → (heading, field of the Klaviyo figures, numeric).
COLUMNS: dict[str, tuple[str, str, bool]] = {
    "name": ("Name", "name", False),
    "recipients": ("Recipients", "recipients", True),
    "open_rate": ("Open rate", "open_rate", True),
    "click_rate": ("Click rate", "click_rate", True),
    "conversions": ("Conversions", "conversions", True),
    "revenue": ("Revenue", "conversion_value", True),
}
DIRECTIONS = ("asc", "desc")


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    channel: str
    recipients: str
    open_rate: str
    click_rate: str
    conversions: str
    revenue: str


@dataclass(frozen=True, slots=True)
class SortedTable:
    rows: list[Row]
    sort: str
    direction: str

    def aria_sort(self, column: str) -> str:
        if column != self.sort:
            return "none"
        return "ascending" if self.direction == "asc" else "descending"

    def next_direction(self, column: str) -> str:
        """Clicking a column sorts it descending first (biggest first), then flips."""
        if column == self.sort:
            return "asc" if self.direction == "desc" else "desc"
        return "asc" if column == "name" else "desc"


def checked_sort(column: str | None, direction: str | None) -> tuple[str, str]:
    """A valid (column, direction); anything unknown falls back to revenue, biggest first."""
    column = column if column in COLUMNS else "revenue"
    direction = direction if direction in DIRECTIONS else ("asc" if column == "name" else "desc")
    return column, direction


def message_table(
    items: list[dict[str, Any]], currency: str | None, column: str, direction: str
) -> SortedTable:
    """The rows of campaigns or flows (Klaviyo figures JSON), sorted by ``column``."""
    column, direction = checked_sort(column, direction)
    _heading, source, numeric = COLUMNS[column]

    def key(item: dict[str, Any]) -> tuple[Any, str]:
        value = item.get(source)
        primary: Any = (fmt.decimal(value) or Decimal(0)) if numeric else str(value).lower()
        return primary, str(item.get("name", "")).lower()

    ordered = sorted(items, key=key, reverse=direction == "desc")
    rows = [
        Row(
            name=str(item.get("name") or item.get("id") or ""),
            channel=str(item.get("channel") or ""),
            recipients=fmt.count(item.get("recipients")),
            open_rate=fmt.percent(item.get("open_rate")),
            click_rate=fmt.percent(item.get("click_rate")),
            conversions=fmt.count(item.get("conversions")),
            revenue=fmt.money(item.get("conversion_value"), currency),
        )
        for item in ordered
    ]
    return SortedTable(rows, column, direction)

"""The period picker: named periods in the store's time zone, or custom dates.

The dashboard URL says which period it shows: ``?period=last_7_days`` (a named period,
resolved against today in the store's time zone) or ``?period=custom&start=…&end=…``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from storesync.errors import InputError
from storesync.periods import NAMED_PERIODS, Period, named_period, today_in, zone

LABELS = {
    "today": "Today",
    "yesterday": "Yesterday",
    "last_7_days": "Last 7 days",
    "last_30_days": "Last 30 days",
    "this_month": "This month",
    "last_month": "Last month",
    "custom": "Custom",
}
DEFAULT = "last_7_days"


@dataclass(frozen=True, slots=True)
class PickedPeriod:
    """The period a page shows and how it was chosen."""

    name: str  # one of NAMED_PERIODS, or "custom"
    period: Period

    @property
    def label(self) -> str:
        return LABELS[self.name]

    def query(self) -> dict[str, str]:
        """The query parameters that choose this period again."""
        if self.name == "custom":
            return {
                "period": "custom",
                "start": self.period.start.isoformat(),
                "end": self.period.end.isoformat(),
            }
        return {"period": self.name}


def pick(
    name: str | None,
    start: str | None,
    end: str | None,
    *,
    timezone: str,
    max_days: int,
    now: datetime | None = None,
) -> PickedPeriod:
    """The period chosen by the query, or :class:`InputError` saying what is wrong (a custom
    one is checked as everywhere: see :meth:`Period.checked`).

    Dates alone (no name) mean a custom period; nothing at all means the default.
    """
    if not name:
        name = "custom" if start or end else DEFAULT
    if name == "custom":
        if not start or not end:
            raise InputError("a custom period needs a start and an end date")
        return PickedPeriod("custom", Period.parse(start, end, max_days=max_days))
    if name not in NAMED_PERIODS:
        raise InputError(f"unknown period {name!r}")
    today = today_in(zone(timezone), now or datetime.now(UTC))
    return PickedPeriod(name, named_period(name, today))


def choices() -> list[tuple[str, str]]:
    """(value, label) of every option of the picker, custom last."""
    return [(n, LABELS[n]) for n in (*NAMED_PERIODS, "custom")]

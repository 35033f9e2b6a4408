"""Periods: inclusive ranges of calendar dates in a store's time zone.

A period's exact bounds are ``[start 00:00, (end + 1 day) 00:00)`` in the store's IANA time
zone, converted to UTC; so a period that crosses a daylight-saving change is 23 or 25 hours
longer or shorter than ``days × 24`` hours, as it should be.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from storesync.errors import InputError

#: The dates a period may cover. Whatever storesync computes from a period must stay within
#: what ``datetime.date`` can represent: the day after its end, the exact UTC bounds in any
#: time zone, the period of equal length before it (at most a few years back). No shop has
#: orders from before 1970, and 9998 leaves a year of margin at the top.
EARLIEST = date(1970, 1, 1)
LATEST = date(9998, 12, 31)


def parse_date(value: str, *, name: str = "date") -> date:
    """Parse ``YYYY-MM-DD`` or raise :class:`InputError` naming the bad value."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} {value!r} is not a date in the form YYYY-MM-DD") from None


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` or :class:`InputError`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Lisbon)"
        ) from None


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """An inclusive range of calendar dates."""

    start: date
    end: date

    @classmethod
    def checked(
        cls,
        start: date,
        end: date,
        *,
        max_days: int | None = None,
        names: tuple[str, str] = ("start", "end"),
    ) -> Period:
        """The period ``start..end``, or :class:`InputError` saying why it is not one: a date
        outside :data:`EARLIEST`..:data:`LATEST`, the end before the start, or more than
        ``max_days`` days (``STORESYNC_MAX_PERIOD_DAYS`` wherever a period is asked for).

        Every way in (the API, the web pages, the command line, the queue itself) checks here,
        so a period that could overflow date arithmetic never reaches a job. ``names`` are
        how the caller's input calls the two dates (``--start`` on the command line).
        """
        for value, name in zip((start, end), names, strict=True):
            if not EARLIEST <= value <= LATEST:
                raise InputError(
                    f"{name} {value} is out of range: use a date from {EARLIEST} to {LATEST}"
                )
        if end < start:
            raise InputError(f"the period ends ({end}) before it starts ({start})")
        period = cls(start, end)
        if max_days is not None and period.days > max_days:
            raise InputError(
                f"the period {start}..{end} is {period.days} days long; the maximum is {max_days}"
            )
        return period

    @classmethod
    def parse(
        cls,
        start: str,
        end: str,
        *,
        max_days: int | None,
        names: tuple[str, str] = ("start", "end"),
    ) -> Period:
        """The period of two ``YYYY-MM-DD`` texts, checked as :meth:`checked` does."""
        return cls.checked(
            parse_date(start, name=names[0]),
            parse_date(end, name=names[1]),
            max_days=max_days,
            names=names,
        )

    @property
    def days(self) -> int:
        """Number of calendar days, both ends included."""
        return (self.end - self.start).days + 1

    def dates(self) -> Iterator[date]:
        """Every date of the period in order."""
        for offset in range(self.days):
            yield self.start + timedelta(days=offset)

    def utc_bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The exact UTC instants ``[start, end)`` of this period in time zone ``tz``."""
        start = datetime.combine(self.start, time.min, tzinfo=tz).astimezone(UTC)
        end = datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
        return start, end

    def chunks(self, days: int) -> list[Period]:
        """Split into consecutive periods of at most ``days`` days."""
        if days < 1:
            raise InputError("chunk size must be at least one day")
        parts: list[Period] = []
        cursor = self.start
        while cursor <= self.end:
            last = min(cursor + timedelta(days=days - 1), self.end)
            parts.append(Period(cursor, last))
            cursor = last + timedelta(days=1)
        return parts

    def previous(self) -> Period:
        """The period of equal length just before this one."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


#: The periods a dashboard offers by name (and the scheduler keeps fresh).
NAMED_PERIODS = ("today", "yesterday", "last_7_days", "last_30_days", "this_month", "last_month")


def today_in(tz: ZoneInfo, now: datetime) -> date:
    """The calendar date at instant ``now`` in time zone ``tz``."""
    return now.astimezone(tz).date()


def named_period(name: str, today: date) -> Period:
    """The period called ``name`` as seen on ``today`` (the last N days include today)."""
    if name == "today":
        return Period(today, today)
    if name == "yesterday":
        day = today - timedelta(days=1)
        return Period(day, day)
    if name == "last_7_days":
        return Period(today - timedelta(days=6), today)
    if name == "last_30_days":
        return Period(today - timedelta(days=29), today)
    if name == "this_month":
        return Period(today.replace(day=1), today)
    if name == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(last.replace(day=1), last)
    raise InputError(f"unknown period {name!r}; choose from {', '.join(NAMED_PERIODS)}")

"""How figures read on the pages: money in the store's currency, counts, rates, changes, times.

Money keeps its exact decimal value and is written the English way with the currency's
symbol (``$1,234.56``, ``€1,234.56``, ``R$1,234.56``); a currency without a known symbol is
written with its ISO code (``1,234.56 CHF``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

#: Symbols written before the amount (CLDR's English symbols).
SYMBOLS = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "BRL": "R$",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "JPY": "¥",
    "CNY": "CN¥",
    "INR": "₹",
    "MXN": "MX$",
    "KRW": "₩",
}
#: Currencies without minor units.
NO_CENTS = {"JPY", "KRW", "CLP", "ISK", "VND"}
DASH = "—"


def decimal(value: object) -> Decimal | None:
    """``value`` as a Decimal (strings, ints and Decimals), or None when it is not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def money(value: object, currency: str | None) -> str:
    """``1234.5, "USD"`` → ``$1,234.50``; negative amounts get a leading minus."""
    amount = decimal(value)
    if amount is None:
        return DASH
    code = (currency or "").upper()
    places = Decimal(1) if code in NO_CENTS else Decimal("0.01")
    rounded = amount.quantize(places, ROUND_HALF_UP)
    digits = f"{abs(rounded):,}"
    sign = "-" if rounded < 0 else ""
    if code in SYMBOLS:
        return f"{sign}{SYMBOLS[code]}{digits}"
    return f"{sign}{digits} {code}".strip()


def count(value: object) -> str:
    """``12345`` → ``12,345``."""
    number = decimal(value)
    return DASH if number is None else f"{number:,.0f}"


def percent(value: object, places: int = 1) -> str:
    """A 0–1 fraction as a percentage: ``0.2345`` → ``23.5%``."""
    fraction = decimal(value)
    if fraction is None:
        return DASH
    return f"{(fraction * 100).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)}%"


def change(current: object, previous: object) -> tuple[str, str] | None:
    """The relative change from ``previous`` to ``current``: text and direction (up/down/flat).

    None when it cannot be said (no previous figure, or a previous figure of zero).
    """
    now, before = decimal(current), decimal(previous)
    if now is None or before is None or before == 0:
        return None
    delta = ((now - before) / abs(before) * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
    if delta == 0:
        return "0.0%", "flat"
    return (f"+{delta}%" if delta > 0 else f"{delta}%"), ("up" if delta > 0 else "down")


def points(current: object, previous: object) -> tuple[str, str] | None:
    """The change between two 0–1 shares, in percentage points: ``+2.1 pp``."""
    now, before = decimal(current), decimal(previous)
    if now is None or before is None:
        return None
    delta = ((now - before) * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
    if delta == 0:
        return "0.0 pp", "flat"
    return (f"+{delta} pp" if delta > 0 else f"{delta} pp"), ("up" if delta > 0 else "down")


def day(value: date) -> str:
    """``2026-03-07`` → ``7 Mar 2026``."""
    return f"{value.day} {value:%b %Y}"


def period(start: date, end: date) -> str:
    """A period for humans: ``7 Mar 2026``, ``1–7 Mar 2026``, ``28 Feb – 6 Mar 2026``."""
    if start == end:
        return day(start)
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day}–{end.day} {end:%b %Y}"
    if start.year == end.year:
        return f"{start.day} {start:%b} – {end.day} {end:%b %Y}"
    return f"{day(start)} – {day(end)}"


def clock(value: datetime | None, tz: ZoneInfo | None = None, *, zone_name: bool = False) -> str:
    """An instant as ``HH:MM`` in ``tz`` (UTC by default), with the date when not today and,
    with ``zone_name``, the zone's abbreviation (``03:41 EST``)."""
    if value is None:
        return DASH
    zone = tz or ZoneInfo("UTC")
    local = value.astimezone(zone)
    today = datetime.now(UTC).astimezone(zone).date()
    text = f"{local:%H:%M}"
    if zone_name:
        text += f" {local:%Z}"
    if local.date() != today:
        text += f", {day(local.date())}"
    return text


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``3 min ago``, ``2 h ago``, ``in 5 min``: how far an instant is from now."""
    if value is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        text = f"{int(seconds)} s"
    elif seconds < 3600:
        text = f"{round(seconds / 60)} min"
    elif seconds < 48 * 3600:
        text = f"{round(seconds / 3600)} h"
    else:
        text = f"{round(seconds / 86400)} days"
    if text.startswith("0 ") and not future:
        return "just now"
    return f"in {text}" if future else f"{text} ago"

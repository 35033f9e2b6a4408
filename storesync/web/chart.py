"""The daily sales chart, laid out on the server and drawn as SVG by a template.

No chart library: one bar per day, scaled to the period's best day, with a few gridlines at
round amounts. The template gives each bar a ``<title>`` (the day, its sales and orders), and
the chart a text summary for screen readers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from storesync.web import format as fmt

WIDTH = 720
HEIGHT = 220
LEFT = 64  # room for the amounts on the axis
BOTTOM = 24  # room for the dates
TOP = 8


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    summary: str
    baseline: float
    left: int


def nice_step(top: Decimal, lines: int = 4) -> Decimal:
    """A round gridline step (1, 2 or 5 times a power of ten) covering ``top`` in ``lines``."""
    if top <= 0:
        return Decimal(1)
    raw = float(top) / lines
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return Decimal(str(factor * power))
    return Decimal(str(10 * power))


def daily_chart(daily: list[dict[str, Any]], currency: str | None) -> Chart | None:
    """The chart of ``daily`` entries (``date``, ``orders``, ``total_sales``), or None if empty."""
    if not daily:
        return None
    days = [
        (date.fromisoformat(d["date"]), int(d["orders"]), Decimal(d["total_sales"])) for d in daily
    ]
    best = max((sales for _, _, sales in days), default=Decimal(0))
    step = nice_step(best)
    top = step * max(1, math.ceil(best / step)) if best > 0 else step
    plot_w = WIDTH - LEFT
    plot_h = HEIGHT - BOTTOM - TOP
    slot = plot_w / len(days)
    gap = min(4.0, slot * 0.2)
    baseline = float(HEIGHT - BOTTOM)
    bars = []
    for i, (day, orders, sales) in enumerate(days):
        height = float(sales / top) * plot_h if top > 0 else 0.0
        bars.append(
            Bar(
                x=round(LEFT + i * slot + gap / 2, 2),
                y=round(baseline - height, 2),
                width=round(max(slot - gap, 1.0), 2),
                height=round(height, 2),
                title=f"{fmt.day(day)}: {fmt.money(sales, currency)}, "
                f"{orders} order{'s' if orders != 1 else ''}",
            )
        )
    ticks = []
    value = Decimal(0)
    while value <= top:
        ticks.append(
            Tick(y=round(baseline - float(value / top) * plot_h, 2), label=_short(value, currency))
        )
        value += step
    every = max(1, math.ceil(len(days) / 8))
    labels = [
        Label(x=round(LEFT + (i + 0.5) * slot, 2), text=f"{d.day} {d:%b}")
        for i, (d, _, _) in enumerate(days)
        if i % every == 0
    ]
    peak = max(days, key=lambda d: d[2])
    summary = (
        f"Daily sales from {fmt.day(days[0][0])} to {fmt.day(days[-1][0])}; "
        f"best day {fmt.day(peak[0])} with {fmt.money(peak[2], currency)}."
    )
    return Chart(WIDTH, HEIGHT, bars, ticks, labels, summary, baseline, LEFT)


def _short(value: Decimal, currency: str | None) -> str:
    """Axis amounts: ``$12k`` rather than ``$12,000.00``."""
    text = fmt.money(value, currency)
    whole = text.split(".")[0]
    if value >= 1_000_000 and value % 100_000 == 0:
        return whole.replace(f"{value:,.0f}", f"{value / 1_000_000:g}M")
    if value >= 1000 and value % 100 == 0:
        return whole.replace(f"{value:,.0f}", f"{value / 1000:g}k")
    return whole

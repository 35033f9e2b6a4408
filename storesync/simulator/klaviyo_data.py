"""A store's Klaviyo account: metrics, campaigns, flows and per-message event series.

Every message (a campaign's one message, or one step of a flow) carries time-stamped event
batches (recipients, delivered, unique opens, unique clicks, unsubscribes) and the orders
attributed to it (conversions, valued at the order's original total). Batches and conversions
are kept sorted with prefix sums, so a report over any ``[start, end)`` is a few bisections
per message. The reports and the oracle both read :meth:`Message.window`, so they agree.
"""

from __future__ import annotations

import hashlib
import random
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SHORT = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

EMAIL_WINDOW = 5 * 86_400  # Klaviyo's default attribution windows
SMS_WINDOW = 1 * 86_400


def _hash_int(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest(), 16)


def ulid(ts: int, *key: object) -> str:
    """A ULID-shaped id (time-ordered, 26 Crockford characters) derived from ``key``."""
    number = ((ts * 1000) << 80) | (_hash_int(*key) & ((1 << 80) - 1))
    chars = []
    for _ in range(26):
        number, rest = divmod(number, 32)
        chars.append(_CROCKFORD[rest])
    return "".join(reversed(chars))


def short_id(*key: object) -> str:
    """A six-character id like Klaviyo's metric and flow ids."""
    number = _hash_int(*key)
    chars = []
    for _ in range(6):
        number, rest = divmod(number, len(_SHORT))
        chars.append(_SHORT[rest])
    return "".join(chars)


@dataclass(frozen=True, slots=True)
class WindowStats:
    """A message's sums over a time window."""

    recipients: int
    delivered: int
    opens_unique: int
    clicks_unique: int
    unsubscribes: int
    conversions: int
    conversion_cents: int


@dataclass(slots=True)
class Message:
    """One sendable message with its event batches and attributed conversions."""

    id: str
    channel: str  # "email" | "sms"
    name: str
    owner: str  # the campaign or flow id
    ts: array[int] = field(default_factory=lambda: array("q"))
    # Per batch: recipients, delivered, opens_unique, clicks_unique, unsubscribes.
    counts: tuple[array[int], ...] = field(
        default_factory=lambda: tuple(array("q") for _ in range(5))
    )
    conv_ts: array[int] = field(default_factory=lambda: array("q"))
    conv_cents: array[int] = field(default_factory=lambda: array("q"))
    _prefix: tuple[array[int], ...] = ()

    def add_batch(self, ts: int, values: tuple[int, int, int, int, int]) -> None:
        if not any(values):
            return
        self.ts.append(ts)
        for column, value in zip(self.counts, values, strict=True):
            column.append(value)

    def add_conversion(self, ts: int, cents: int) -> None:
        self.conv_ts.append(ts)
        self.conv_cents.append(cents)

    def finish(self) -> None:
        """Turn the columns into prefix sums (sorting batches first if they arrived unsorted)."""
        columns = list(self.counts)
        if any(a > b for a, b in zip(self.ts, self.ts[1:], strict=False)):
            order = sorted(range(len(self.ts)), key=self.ts.__getitem__)
            self.ts = array("q", (self.ts[i] for i in order))
            columns = [array("q", (column[i] for i in order)) for column in columns]
        # Conversions arrive in time order: orders are generated in time order.
        columns.append(self.conv_cents)
        self._prefix = tuple(array("q", accumulate(column, initial=0)) for column in columns)
        self.counts = ()
        self.conv_cents = array("q")

    def window(self, start: int, end: int) -> WindowStats | None:
        """Sums of events with ``start <= ts < end``; ``None`` when nothing happened."""
        lo, hi = bisect_left(self.ts, start), bisect_left(self.ts, end)
        clo, chi = bisect_left(self.conv_ts, start), bisect_left(self.conv_ts, end)
        if lo == hi and clo == chi:
            return None
        recipients, delivered, opens, clicks, unsubscribes = (
            p[hi] - p[lo] for p in self._prefix[:5]
        )
        return WindowStats(
            recipients=recipients,
            delivered=delivered,
            opens_unique=opens,
            clicks_unique=clicks,
            unsubscribes=unsubscribes,
            conversions=chi - clo,
            conversion_cents=self._prefix[5][chi] - self._prefix[5][clo],
        )


@dataclass(frozen=True, slots=True)
class Metric:
    id: str
    name: str
    integration: str | None  # "Shopify" or None for Klaviyo's own metrics
    created: int


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    name: str
    channel: str
    status: str  # "Sent" | "Scheduled" | "Draft"
    created: int
    send_time: int | None
    message: int  # index into KlaviyoData.messages


@dataclass(frozen=True, slots=True)
class Flow:
    id: str
    name: str
    status: str  # "live" | "draft" | "manual"
    trigger_type: str
    created: int
    messages: tuple[int, ...]


# (name, status, trigger, steps as (channel, daily recipients per order, per new customer,
# conversion weight)).
FLOW_PLAN: tuple[tuple[str, str, str, tuple[tuple[str, float, float, float], ...]], ...] = (
    ("Welcome Series", "live", "Added to List",
     (("email", 0.0, 3.0, 0.10), ("email", 0.0, 2.4, 0.05), ("email", 0.0, 1.9, 0.03))),
    ("Abandoned Cart", "live", "Metric",
     (("email", 2.2, 0.0, 0.30), ("email", 1.5, 0.0, 0.15), ("sms", 0.7, 0.0, 0.10))),
    ("Browse Abandonment", "live", "Metric", (("email", 3.0, 0.0, 0.07),)),
    ("Post-Purchase Thank You", "live", "Metric",
     (("email", 0.95, 0.0, 0.10), ("email", 0.6, 0.0, 0.05))),
    ("Customer Winback", "live", "Metric", (("email", 0.25, 0.0, 0.05),)),
    ("SMS Welcome", "live", "Added to List", (("sms", 0.0, 1.2, 0.05),)),
    ("Birthday Treat", "draft", "Date Based", (("email", 0.0, 0.0, 0.0),)),
)  # fmt: skip

_THEMES = ("Weekly Newsletter", "New Arrivals", "Flash Sale", "Back in Stock", "VIP Early Access",
           "Gift Guide", "Customer Favourites", "Last Chance")  # fmt: skip


def _round(rng: random.Random, value: float) -> int:
    # Stochastic rounding keeps small stores' expected counts right.
    whole = int(value)
    return whole + (1 if rng.random() < value - whole else 0)


def batch_counts(
    rng: random.Random, channel: str, recipients: int
) -> tuple[int, int, int, int, int]:
    """Plausible delivered/open/click/unsubscribe counts for ``recipients`` sends."""
    if channel == "email":
        delivered = _round(rng, recipients * rng.uniform(0.97, 0.995))
        opens = _round(rng, delivered * rng.uniform(0.32, 0.55))
        clicks = _round(rng, delivered * rng.uniform(0.015, 0.06))
    else:
        delivered = _round(rng, recipients * rng.uniform(0.95, 0.99))
        opens = 0  # SMS has no opens
        clicks = _round(rng, delivered * rng.uniform(0.05, 0.12))
    unsubs = _round(rng, delivered * rng.uniform(0.001, 0.005))
    return recipients, delivered, opens, clicks, unsubs


@dataclass(slots=True)
class KlaviyoData:
    """Everything one Klaviyo account holds."""

    metrics: list[Metric]
    campaigns: list[Campaign]
    flows: list[Flow]
    messages: list[Message]
    placed_order_metric: str
    # Sent campaigns by send time, for attributing orders: (send_ts, message index).
    sends: list[tuple[int, int]]
    flow_weights: tuple[list[int], list[float]]
    # Live flows' steps: (message index, channel, recipients per order, per new customer).
    flow_steps: list[tuple[int, str, float, float]]

    def attribute(self, rng: random.Random, ts: int) -> int:
        """The message an order placed at ``ts`` is attributed to, or -1."""
        if rng.random() < 0.14 and self.sends:
            pos = bisect_left(self.sends, (ts + 1, -1)) - 1
            if pos >= 0:
                send_ts, index = self.sends[pos]
                window = EMAIL_WINDOW if self.messages[index].channel == "email" else SMS_WINDOW
                if ts - send_ts < window:
                    return index
        if rng.random() < 0.12 and self.flow_weights[0]:
            return rng.choices(self.flow_weights[0], weights=self.flow_weights[1])[0]
        return -1

    def add_flow_day(
        self, rng: random.Random, day_start: int, day_end: int, orders: int, new_customers: int
    ) -> None:
        """One day of flow sends, sized from the day's orders and new customers.

        This runs for every day of every store, so it is written for speed: one set of rates
        per day, and rounding by adding a uniform draw before truncating (unbiased).
        """
        r = rng.random
        span = day_end - day_start
        deliver, opened = 0.97 + 0.025 * r(), 0.32 + 0.23 * r()
        clicked, unsubscribed = 0.015 + 0.045 * r(), 0.001 + 0.004 * r()
        for index, channel, per_order, per_new in self.flow_steps:
            expected = (per_order * orders + per_new * (new_customers + 1)) * (0.8 + 0.4 * r())
            recipients = int(expected + r())
            if not recipients:
                continue
            delivered = int(recipients * (deliver if channel == "email" else deliver - 0.02) + r())
            opens = int(delivered * opened + r()) if channel == "email" else 0  # SMS: no opens
            clicks = int(delivered * (clicked if channel == "email" else 2.5 * clicked) + r())
            unsubs = int(delivered * unsubscribed + r())
            ts = day_start + int(span * (0.05 + 0.9 * r()))
            self.messages[index].add_batch(ts, (recipients, delivered, opens, clicks, unsubs))

    def finish(self) -> None:
        for message in self.messages:
            message.finish()


def plan_account(
    key: str, orders_per_day: float, midnights: list[int], first_ordinal: int
) -> KlaviyoData:
    """Metrics, flows and the campaign calendar for the days whose local midnights are given.

    ``midnights[i]`` is the UTC instant of local midnight of day ``i`` (whose date ordinal is
    ``first_ordinal + i``); the last entry closes the last day. Campaign statistics do not
    depend on orders, so they are generated here.
    """
    rng = random.Random(f"{key}:klaviyo")  # noqa: S311 - simulated data
    start = midnights[0]
    metrics = [
        Metric(short_id(key, "metric", name), name, integration, start - 86_400 * 30)
        for name, integration in (
            ("Placed Order", "Shopify"),
            ("Ordered Product", "Shopify"),
            ("Fulfilled Order", "Shopify"),
            ("Received Email", None),
            ("Opened Email", None),
            ("Clicked Email", None),
        )
    ]
    messages: list[Message] = []
    flows: list[Flow] = []
    weights: tuple[list[int], list[float]] = ([], [])
    steps_live: list[tuple[int, str, float, float]] = []
    for name, status, trigger, steps in FLOW_PLAN:
        flow_id = short_id(key, "flow", name)
        indices = []
        for step, (channel, per_order, per_new, weight) in enumerate(steps, start=1):
            label = "SMS" if channel == "sms" else "Email"
            messages.append(
                Message(
                    ulid(start, key, flow_id, step), channel, f"{name}: {label} {step}", flow_id
                )
            )
            indices.append(len(messages) - 1)
            if status == "live" and weight > 0:
                weights[0].append(len(messages) - 1)
                weights[1].append(weight)
            if status == "live":
                steps_live.append((len(messages) - 1, channel, per_order, per_new))
        flows.append(Flow(flow_id, name, status, trigger, start - 86_400 * 20, tuple(indices)))

    campaigns: list[Campaign] = []
    sends: list[tuple[int, int]] = []
    days = len(midnights) - 1
    list_size = max(20.0, 80.0 * orders_per_day)

    def add_campaign(name: str, channel: str, status: str, send: int | None, created: int) -> None:
        campaign_id = ulid(created, key, "campaign", len(campaigns))
        message = Message(ulid(created, key, "message", len(campaigns)), channel, name, campaign_id)
        messages.append(message)
        campaigns.append(
            Campaign(campaign_id, name, channel, status, created, send, len(messages) - 1)
        )
        if send is None or status != "Sent":
            return
        sends.append((send, len(messages) - 1))
        size = list_size * (0.6 + 0.4 * len(campaigns) / max(1, days / 2.5))
        if channel == "sms":
            size /= 5
        recipients, delivered, opens, clicks, unsubs = batch_counts(rng, channel, _round(rng, size))
        # Sends land at once; engagement decays over the next 72 hours in 6-hour batches.
        shares = [0.5**step for step in range(12)]
        total = sum(shares)
        spread = [[_round(rng, v * s / total) for s in shares] for v in (opens, clicks, unsubs)]
        for step in range(12):
            first = step == 0
            message.add_batch(
                send + step * 6 * 3600,
                (recipients if first else 0, delivered if first else 0,
                 spread[0][step], spread[1][step], spread[2][step]),
            )  # fmt: skip

    for day in range(days):
        midnight, span = midnights[day], midnights[day + 1] - midnights[day]
        ordinal = first_ordinal + day
        weekday = (ordinal - 1) % 7  # date.fromordinal(1) is a Monday
        theme = _THEMES[len(campaigns) % len(_THEMES)]
        if weekday in (1, 4):
            send = midnight + span * (10 if weekday == 1 else 15) // 24
            add_campaign(f"{theme} #{len(campaigns) + 1}", "email", "Sent", send, send - 3 * 86_400)
        if weekday == 3 and (ordinal // 7) % 2 == 0:
            send = midnight + span * 18 // 24
            add_campaign(f"SMS {theme} #{len(campaigns) + 1}", "sms", "Sent", send, send - 86_400)
    end = midnights[-1]
    add_campaign("Spring Preview (draft)", "email", "Draft", None, end - 86_400 * 2)
    add_campaign("Next Week's Launch", "email", "Scheduled", end + 3 * 86_400, end - 86_400)
    return KlaviyoData(
        metrics=metrics,
        campaigns=campaigns,
        flows=flows,
        messages=messages,
        placed_order_metric=metrics[0].id,
        sends=sorted(sends),
        flow_weights=weights,
        flow_steps=steps_live,
    )

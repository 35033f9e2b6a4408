"""What the request log proves about the providers' limits, and the least time they allow.

:func:`audit_limits` replays the log against the configuration's limits. A call the providers
accepted must have fitted:

- **Shopify**: each shop's bucket is replayed. The bucket starts full at the shop's first
  call, every call takes its actual cost, and the bucket refills at the restore rate. Each
  call is credited with the refill until its answer left, because the simulator charged it
  somewhere in between. So the replay errs towards more points, never fewer.
- **Klaviyo**: each account's calls per endpoint group are counted in Klaviyo's fixed windows
  (second, minute, UTC day, aligned on the epoch). Only a call that began and ended inside a
  window is counted in it.

Refused calls (a genuine THROTTLED or 429, ``throttled`` in the log) are listed apart: the
limit held, but the client had not paced itself.

The least time the budgets allow: :func:`shopify_seconds` per shop (its bucket full at its
first call), :func:`shopify_seconds_per_sync` per period synced (the bucket full at the
sync's first call), ``(Σ actual cost of every call but the last + the last one's requested
cost − bucket size) ÷ restore rate``; and :func:`window_seconds` for Klaviyo, where ``n`` calls
with ``c`` allowed per window of ``L`` seconds need ``⌈n/c⌉`` fixed windows, so the last call
cannot come before the start of the ``⌈n/c⌉``-th window counted from the one the run started
in.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from storesync.simulator.config import SimStore, SimulatorConfig, WindowLimit
from storesync.simulator.requestlog import RequestRecord

#: Klaviyo's two report endpoints share one group, metric aggregates is ``aggregates`` (a limit
#: group must be a field name of :class:`KlaviyoLimits`); other endpoints are their own group.
_GROUPS = {
    "campaign-values-reports": "reports",
    "flow-values-reports": "reports",
    "metric-aggregates": "aggregates",
}
_WINDOWS = (("burst", 1.0), ("steady", 60.0), ("daily", 86_400.0))


def klaviyo_group(endpoint: str) -> str:
    """The rate-limit group of a Klaviyo endpoint as the simulator names it (``klaviyo.py``
    limits requests by it, and the audit replays them by it)."""
    return _GROUPS.get(endpoint, endpoint)


def records_of(rows: Iterable[dict[str, Any]]) -> list[RequestRecord]:
    """Records from ``GET /_sim/requests`` JSON, oldest first."""
    return sorted((RequestRecord(**row) for row in rows), key=lambda r: r.time)


@dataclass(frozen=True, slots=True)
class LimitAudit:
    """Calls per provider, calls refused, and accepted calls that broke a limit."""

    calls: Counter[str]
    refused: list[RequestRecord]
    over_limit: list[str]

    @property
    def held(self) -> bool:
        return not self.over_limit


def _bucket(config: SimulatorConfig, store: SimStore | None) -> tuple[float, float]:
    size = (store.bucket_size if store else None) or config.bucket_size
    rate = (store.restore_rate if store else None) or config.restore_rate
    return size, rate


def _shopify_accepted(records: Iterable[RequestRecord]) -> dict[str, list[RequestRecord]]:
    calls: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if (
            r.provider == "shopify"
            and r.account
            and not r.throttled
            and r.fault is None
            and r.requested_cost is not None
            and r.actual_cost is not None
        ):
            calls[r.account].append(r)
    return calls


def _klaviyo_accepted(
    records: Iterable[RequestRecord],
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(account, group) → (began, answered) of the calls Klaviyo answered with data."""
    calls: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        if r.provider == "klaviyo" and r.account and r.status is not None and r.status < 300:
            span = (r.time, r.time + r.duration_ms / 1000)
            calls[(r.account, klaviyo_group(r.endpoint))].append(span)
    return calls


def audit_limits(records: Sequence[RequestRecord], config: SimulatorConfig) -> LimitAudit:
    """Replay ``records`` (oldest first) against ``config``'s limits."""
    stores = {s.shop_domain: s for s in config.stores}
    over: list[str] = []
    for shop, calls in _shopify_accepted(records).items():
        size, rate = _bucket(config, stores.get(shop))
        level, clock = size, calls[0].time
        for call in calls:
            answered = call.time + call.duration_ms / 1000
            available = min(size, level + (answered - clock) * rate)
            assert call.requested_cost is not None and call.actual_cost is not None
            if call.requested_cost > available + 1e-6:
                over.append(
                    f"shopify {shop} at {call.time:.3f}: requested {call.requested_cost} "
                    f"with {available:.1f} points in the bucket"
                )
            level, clock = available - call.actual_cost, call.time
    for (account, group), spans in _klaviyo_accepted(records).items():
        limit = _klaviyo_limit(config, group)
        for kind, length in _WINDOWS:
            cap = getattr(limit, kind)
            if cap is None:
                continue
            counted = Counter(
                int(began // length)
                for began, answered in spans
                if int(began // length) == int(answered // length)
            )
            over += [
                f"klaviyo {account} {group}: {n} calls in the {kind} window starting at "
                f"{w * length:.0f} (limit {cap})"
                for w, n in counted.items()
                if n > cap
            ]
    refused = [r for r in records if r.throttled]
    return LimitAudit(Counter(r.provider for r in records if r.provider), refused, over)


def _klaviyo_limit(config: SimulatorConfig, group: str) -> WindowLimit:
    try:
        return config.klaviyo_limits.group(group)
    except AttributeError:
        return WindowLimit()  # a group without limits


def _bucket_seconds(calls: Sequence[RequestRecord], size: float, rate: float) -> float:
    if not calls:
        return 0.0
    spent = sum(c.actual_cost or 0 for c in calls[:-1]) + (calls[-1].requested_cost or 0)
    return max(0.0, (spent - size) / rate)


def shopify_seconds(records: Sequence[RequestRecord], config: SimulatorConfig) -> dict[str, float]:
    """Per shop: the least time its accepted calls needed, from a full bucket."""
    stores = {s.shop_domain: s for s in config.stores}
    return {
        shop: _bucket_seconds(calls, *_bucket(config, stores.get(shop)))
        for shop, calls in _shopify_accepted(records).items()
    }


def shopify_seconds_per_sync(
    records: Sequence[RequestRecord], config: SimulatorConfig
) -> dict[tuple[str, str | None, str | None], float]:
    """Per (shop, orders from, orders to), that is per period synced: the least time its
    accepted calls needed, from a full bucket."""
    stores = {s.shop_domain: s for s in config.stores}
    syncs: dict[tuple[str, str | None, str | None], list[RequestRecord]] = defaultdict(list)
    for shop, calls in _shopify_accepted(records).items():
        for call in calls:
            syncs[(shop, call.created_at_min, call.created_at_max)].append(call)
    return {
        key: _bucket_seconds(calls, *_bucket(config, stores.get(key[0])))
        for key, calls in syncs.items()
    }


def window_seconds(calls: int, limit: WindowLimit, start: float) -> float:
    """The least time from ``start`` (epoch seconds) until the last of ``calls`` calls fits in
    Klaviyo's fixed windows."""
    earliest = start
    for kind, length in _WINDOWS:
        cap = getattr(limit, kind)
        if cap:
            window = math.floor(start / length) + math.ceil(calls / cap) - 1
            earliest = max(earliest, window * length)
    return earliest - start

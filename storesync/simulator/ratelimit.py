"""The providers' rate limits: Shopify's leaky bucket and Klaviyo's fixed windows.

Both are driven by the simulator's clock (epoch seconds), so tests can use a fake clock.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from storesync.simulator.config import WindowLimit


class LeakyBucket:
    """Shopify's cost bucket for one app and shop.

    It holds up to ``size`` points and refills at ``restore_rate`` points a second. A query
    needs its whole requested cost available; the unused part is refunded afterwards.
    """

    def __init__(self, size: float, restore_rate: float, now: float) -> None:
        self.size = float(size)
        self.restore_rate = float(restore_rate)
        self.available = float(size)
        self._last = now
        self._lock = threading.Lock()

    def _leak(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self.available = min(self.size, self.available + elapsed * self.restore_rate)
        self._last = max(self._last, now)

    def reconfigure(self, size: float, restore_rate: float, now: float) -> None:
        with self._lock:
            self._leak(now)
            self.size, self.restore_rate = float(size), float(restore_rate)
            self.available = min(self.available, self.size)

    def take(self, cost: float, now: float) -> bool:
        """Deduct ``cost`` when the bucket holds it; False (nothing deducted) otherwise."""
        with self._lock:
            self._leak(now)
            if self.available + 1e-6 < cost:  # float dust must not throttle an exact wait
                return False
            self.available -= cost
            return True

    def refund(self, points: float, now: float) -> None:
        with self._lock:
            self._leak(now)
            self.available = min(self.size, self.available + max(0.0, points))

    def drain(self, points: float, now: float) -> None:
        """Spend ``points`` regardless of cost (another app or client using the budget)."""
        with self._lock:
            self._leak(now)
            self.available = max(0.0, self.available - points)

    def status(self, now: float) -> dict[str, Any]:
        """``throttleStatus`` as Shopify reports it."""
        with self._lock:
            self._leak(now)
            return {
                "maximumAvailable": self.size,
                "currentlyAvailable": int(self.available),
                "restoreRate": self.restore_rate,
            }


_WINDOWS = (("burst", 1.0), ("steady", 60.0), ("daily", 86_400.0))


@dataclass(frozen=True, slots=True)
class WindowDecision:
    """Whether a Klaviyo request may go ahead, and the headers to send."""

    allowed: bool
    retry_after: int  # whole seconds; 0 when allowed
    limited_by: str | None  # "burst" | "steady" | "daily"
    headers: dict[str, str]


class FixedWindows:
    """Klaviyo's fixed-window counters, per (account, endpoint group).

    Windows are aligned on the epoch: whole seconds, whole minutes and UTC days, so the daily
    report budget resets at UTC midnight. Refused requests do not count.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def spend(self, key: str, group: str, count: int, now: float) -> None:
        """Count ``count`` requests made by someone else (another integration of the account)."""
        with self._lock:
            for kind, length in _WINDOWS:
                used = self.used(key, group, kind, now)
                self._counts[(key, group, kind)] = (int(now // length), used + count)

    def usage(self, now: float) -> dict[str, dict[str, dict[str, int]]]:
        """Requests counted in the current windows: account -> group -> window -> count."""
        with self._lock:
            keys = list(self._counts)
        out: dict[str, dict[str, dict[str, int]]] = {}
        for key, group, kind in keys:
            out.setdefault(key, {}).setdefault(group, {})[kind] = self.used(key, group, kind, now)
        return out

    def used(self, key: str, group: str, kind: str, now: float) -> int:
        """Requests counted in the current ``kind`` window."""
        length = dict(_WINDOWS)[kind]
        window, count = self._counts.get((key, group, kind), (-1, 0))
        return count if window == int(now // length) else 0

    def hit(self, key: str, group: str, limit: WindowLimit, now: float) -> WindowDecision:
        """Count one request unless a window is full."""
        with self._lock:
            retry, limited_by = 0, None
            for kind, length in _WINDOWS:
                cap = getattr(limit, kind)
                if cap is None:
                    continue
                if self.used(key, group, kind, now) >= cap:
                    wait = max(1, math.ceil((int(now // length) + 1) * length - now))
                    if wait > retry:
                        retry, limited_by = wait, kind
            if limited_by is None:
                for kind, length in _WINDOWS:
                    window = int(now // length)
                    self._counts[(key, group, kind)] = (
                        window,
                        self.used(key, group, kind, now) + 1,
                    )
            headers = {}
            if limit.steady is not None:
                left = max(0, limit.steady - self.used(key, group, "steady", now))
                headers = {
                    "RateLimit-Limit": str(limit.steady),
                    "RateLimit-Remaining": str(left),
                    "RateLimit-Reset": str(max(1, math.ceil((int(now // 60) + 1) * 60 - now))),
                }
            return WindowDecision(limited_by is None, retry, limited_by, headers)

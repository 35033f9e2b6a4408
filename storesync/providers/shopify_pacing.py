"""Pacing for Shopify's GraphQL cost bucket, so that a sync is (almost) never THROTTLED.

Shopify gives each app and shop a leaky bucket of cost points: a call needs its *requested*
cost available, the bucket refills at ``restoreRate`` points a second up to
``maximumAvailable``, and every answer reports the bucket in ``extensions.cost.throttleStatus``.
:class:`CostBucket` keeps an estimate of that bucket from the answers and, before each call,
reserves the call's cost and says how long to wait first: ``(requested − available) /
restoreRate`` when the estimate is short. Reservations are taken synchronously (no ``await``
between reading and updating the estimate), so concurrent callers in one process queue up one
behind the other instead of all seeing the same points.

The estimate is conservative: an answer's ``currentlyAvailable`` was measured on Shopify's side
before the answer travelled back, so taking it as "available now" undercounts the refill.

One bucket per shop is shared by every client in the process (:func:`bucket_for`), because
Shopify's bucket is per app and shop whatever the number of our clients.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Extra wait, as points, so that float rounding on either side never makes a call arrive a
#: hair too early.
SAFETY_POINTS = 1.0
#: Extra wait when points were taken for calls Shopify has not answered yet. Such a call is
#: charged by Shopify a little after we count it (transit, parsing); if the bucket was full
#: meanwhile, Shopify lost that refill and our estimate is ahead by that much.
UNCONFIRMED_MARGIN_SECONDS = 0.005
#: While one call probes a bucket nobody knows yet, the others look again this often.
PROBE_POLL_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class ThrottleStatus:
    """``extensions.cost.throttleStatus`` of one answer."""

    maximum: float
    available: float
    restore_rate: float

    @classmethod
    def from_extensions(cls, extensions: Mapping[str, Any] | None) -> ThrottleStatus | None:
        """Read it from a response's ``extensions`` (None when absent or malformed)."""
        status = ((extensions or {}).get("cost") or {}).get("throttleStatus")
        if not isinstance(status, Mapping):
            return None
        try:
            return cls(
                maximum=float(status["maximumAvailable"]),
                available=float(status["currentlyAvailable"]),
                restore_rate=float(status["restoreRate"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class Grant:
    """Points taken for one call, which may be sent now."""

    cost: float
    sequence: int  # order of the grants, to tell a fresh reading from a stale one


class CostBucket:
    """An estimate of one shop's cost bucket, net of the calls we have been granted.

    Points are taken only at the moment a call may go (:meth:`take`); a caller that must wait
    is told for how long and asks again, rather than booking future points. Booked future
    points would assume each caller goes exactly on time, and a late caller loses Shopify the
    refill it could not hold above the bucket's size.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.maximum: float | None = None  # unknown until the first answer
        self.restore_rate: float | None = None
        # Points in Shopify's bucket at time `_at`, minus every call granted since Shopify's
        # last reading.
        self._level = 0.0
        self._at = 0.0
        self._outstanding = 0.0  # costs granted whose answer has not arrived yet
        self._in_flight = 0  # number of those calls
        self._unconfirmed = 0  # takes made since the last reading
        self._granted = 0
        self._read_from = -1  # the grant whose answer gave the reading in use

    @property
    def known(self) -> bool:
        """Whether an answer has told us the bucket's size and restore rate yet."""
        return self.maximum is not None and self.restore_rate is not None

    def available(self) -> float:
        """The estimated points available now for a new call; ``inf`` while unknown."""
        with self._lock:
            return self._level_now(self._clock())

    def _level_now(self, now: float) -> float:
        if self.maximum is None or self.restore_rate is None:
            return float("inf")
        return min(self.maximum, self._level + (now - self._at) * self.restore_rate)

    def take(self, cost: float) -> Grant | float:
        """Take ``cost`` points for a call to send now, or say how many seconds to wait.

        While the bucket is unknown, the first caller goes at once as a probe and the others
        wait for its answer: a burst of first calls must not overdraw a bucket whose size
        nobody knows yet. The caller must :meth:`release` every :class:`Grant` when its
        call's answer (or failure) is in.
        """
        with self._lock:
            now = self._clock()
            if self.maximum is None or self.restore_rate is None:
                if self._in_flight:
                    return PROBE_POLL_SECONDS
            else:
                level = self._level_now(now)
                if level < cost:
                    margin = UNCONFIRMED_MARGIN_SECONDS if self._unconfirmed else 0.0
                    return (cost - level + SAFETY_POINTS) / self.restore_rate + margin
                self._level, self._at = level - cost, now
            self._outstanding += cost
            self._in_flight += 1
            self._unconfirmed += 1
            self._granted += 1
            return Grant(cost, self._granted)

    def release(self, grant: Grant) -> None:
        """A granted call finished (answered or failed)."""
        with self._lock:
            self._outstanding = max(0.0, self._outstanding - grant.cost)
            self._in_flight = max(0, self._in_flight - 1)

    def observe(self, status: ThrottleStatus, grant: Grant | None = None) -> None:
        """Adopt the bucket Shopify reported in the answer to ``grant``'s call.

        Call after :meth:`release`. Shopify's reading covers the call it answers; calls still
        outstanding may not have been charged yet, so they stay deducted (if they were, the
        estimate is merely cautious). Answers can be read out of order when calls overlap: a
        reading from a call granted before the one whose reading is in use is older news (it
        may predate charges for calls that have since been answered), so it is ignored.
        """
        with self._lock:
            self.maximum = status.maximum
            self.restore_rate = status.restore_rate
            if grant is not None:
                if grant.sequence < self._read_from:
                    return
                self._read_from = grant.sequence
            self._level = status.available - self._outstanding
            self._at = self._clock()
            self._unconfirmed = self._in_flight


_BUCKETS: dict[str, CostBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def bucket_for(key: str) -> CostBucket:
    """The process-wide bucket estimate for one shop (``key``: the shop's GraphQL endpoint)."""
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None:
            bucket = _BUCKETS[key] = CostBucket()
        return bucket

"""Throttling of failed sign-ins and bearer tokens, per client address.

Each failure (an unknown, revoked or expired token on an API route; a bad token in the sign-in
form; a used or bogus one-time link) is remembered for ``window`` seconds. An address with
``limit`` failures inside the window is refused with 429 and ``Retry-After`` (the seconds until
its oldest failure leaves the window) before its credentials are even looked up: guessing
tokens gets ``limit`` tries per window, and costs the database nothing past them.

The counts live in this process's memory: each server process throttles on its own, and a
restart forgets them. That bounds a guesser to ``limit`` × processes per window, which is what
matters against 256-bit tokens; it needs no table written on every failure. The number of
addresses remembered is bounded too (the oldest are forgotten first), so a flood from many
addresses cannot grow the process's memory without end.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request

#: Addresses remembered at most (each holds at most ``limit`` timestamps).
MAX_ADDRESSES = 10_000


def client_address(request: Request) -> str | None:
    """The client's address, as the server saw it (behind a proxy: see uvicorn's
    ``--forwarded-allow-ips``): what the failures are counted against."""
    return request.client.host if request.client else None


class TooManyFailures(Exception):
    """The address failed to authenticate too often; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed sign-ins or unknown tokens from this address: try again in "
            f"{retry_after} s"
        )
        self.retry_after = retry_after


class FailureThrottle:
    """Counts authentication failures per client address in a sliding window."""

    def __init__(
        self,
        *,
        limit: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, address: str | None) -> None:
        """Raise :class:`TooManyFailures` when ``address`` is over its limit now."""
        failures = self._recent(address)
        if failures is not None and len(failures) >= self.limit:
            retry_after = failures[0] + self.window - self._clock()
            raise TooManyFailures(max(1, math.ceil(retry_after)))

    def failed(self, address: str | None) -> None:
        """Remember one failure of ``address``."""
        key = address or "unknown"
        failures = self._recent(key)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self.limit)
            while len(self._failures) > self._max_addresses:
                self._failures.popitem(last=False)
        self._failures.move_to_end(key)
        failures.append(self._clock())

    def _recent(self, address: str | None) -> deque[float] | None:
        key = address or "unknown"
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = self._clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

"""Shared HTTP plumbing for the connectors: transient-failure retries and body decoding.

Both providers' clients send every request through :func:`send`, which retries what is worth
retrying at once (5xx answers, timeouts, refused or dropped connections) a few times with a
short, jittered backoff, and raises :class:`~storesync.errors.RetryableError` when that is not
enough, so the job queue can try again much later. Rate-limit answers (429, THROTTLED) are not
handled here: each provider knows how long its own budget needs, see ``shopify_pacing`` and
``klaviyo_pacing``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from storesync.errors import RetryableError
from storesync.providers.events import ProviderEvent, ProviderEvents, emit

PROVIDER_NAMES = {"shopify": "Shopify", "klaviyo": "Klaviyo"}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how quickly transient failures are retried inside one call.

    Attempt ``n`` (1-based) that fails waits ``base_delay × 2**(n-1)`` seconds, capped at
    ``max_delay``, with ±25 % jitter so that workers hit by the same outage do not retry in
    lockstep.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt``."""
        raw = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return raw * random.uniform(0.75, 1.25)  # noqa: S311 (jitter, not cryptography)


def is_transient_status(status: int) -> bool:
    """5xx answers are the provider's trouble and usually pass."""
    return status >= 500


async def send(
    http: httpx.AsyncClient,
    request: httpx.Request,
    *,
    provider: str,
    policy: RetryPolicy,
    events: ProviderEvents | None,
    before_attempt: Callable[[], Awaitable[None]] | None = None,
    deadline: float | None = None,
) -> httpx.Response:
    """Send ``request``, retrying transient failures; return the first other response.

    ``before_attempt`` runs before every attempt (the caller's pacing), so a retry is paced
    like a first try. ``deadline`` bounds each attempt as a whole, body included: httpx's own
    timeouts bound each network operation, so a server that trickles bytes (or an in-process
    app, where httpx enforces no timeout at all) could otherwise hold a call forever. The
    response body is read. Raises :class:`RetryableError` after ``policy.attempts`` transient
    failures in a row.
    """
    name = PROVIDER_NAMES.get(provider, provider)
    reason = "no attempt was made"
    for attempt in range(1, policy.attempts + 1):
        if before_attempt is not None:
            await before_attempt()
        try:
            async with asyncio.timeout(deadline):
                response = await http.send(request)
        except (httpx.TimeoutException, TimeoutError):
            reason = "the request timed out"
        except httpx.TransportError as exc:
            reason = f"the connection failed ({type(exc).__name__})"
        else:
            if not is_transient_status(response.status_code):
                return response
            reason = f"it answered HTTP {response.status_code}"
        if attempt == policy.attempts:
            break
        wait = policy.delay(attempt)
        await emit(
            events,
            ProviderEvent(
                provider,
                "retried",
                f"{name}: {reason}; retrying in {wait:.1f} s",
                {"reason": reason, "attempt": attempt, "wait_seconds": round(wait, 3)},
            ),
        )
        await asyncio.sleep(wait)
    raise RetryableError(
        f"{name} could not be reached reliably: {reason} ({policy.attempts} tries)",
        provider=provider,
        retry_after=policy.max_delay,
    )


def decode_json(response: httpx.Response, *, provider: str) -> Any:
    """The response's JSON with every JSON float as an exact :class:`Decimal`.

    A body that is not JSON (a proxy's error page, a cut-off answer) is a transient failure.
    """
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        name = PROVIDER_NAMES.get(provider, provider)
        raise RetryableError(
            f"{name} answered HTTP {response.status_code} with a body that is not JSON",
            provider=provider,
        ) from None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number (float allowed) or an HTTP date."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)

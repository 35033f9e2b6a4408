"""Events the connectors report while they work, for a job's event log.

The pipeline passes a :class:`ProviderEvents` callback to each client; the client calls it when
something worth showing a user happens inside a sync: it waited for Shopify's cost bucket, it
was throttled anyway, it retried after a transient failure, it started a bulk operation, it
reserved Klaviyo report calls. Events never carry credentials.

Kinds (``ProviderEvent.kind``):

- ``throttled``: the provider refused a call for rate reasons (THROTTLED, 429); ``data``
  has ``wait_seconds`` and ``status``. Not a failure: the call is repeated after the wait.
- ``paced``: the client waited before a call so as not to be throttled; ``data`` has
  ``wait_seconds``. Only reported for waits of a second or more (shorter ones are routine).
- ``retried``: a transient failure (5xx, timeout, dropped connection) was retried; ``data``
  has ``reason``, ``attempt`` and ``wait_seconds``.
- ``bulk``: a Shopify bulk operation changed state; ``data`` has ``status`` and ``objects``.
- ``budget``: Klaviyo report calls were reserved; ``data`` has ``reserved`` and ``remaining``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One thing that happened during a provider call."""

    provider: str  # "shopify" or "klaviyo"
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


class ProviderEvents(Protocol):
    """Receives :class:`ProviderEvent` objects; the pipeline writes them to the job's log."""

    async def __call__(self, event: ProviderEvent) -> None: ...


async def emit(events: ProviderEvents | None, event: ProviderEvent) -> None:
    """Report ``event`` to ``events`` (if any) and to the log.

    A failing callback must not fail the sync it is only observing, so its errors are logged
    and swallowed.
    """
    log.info("%s %s: %s", event.provider, event.kind, event.message)
    if events is None:
        return
    try:
        await events(event)
    except Exception:
        log.exception("the provider event callback failed (event %s)", event.kind)

"""The log of every provider request the simulator answered (or dropped).

Tests read it to prove behaviour the responses alone cannot show: that a chunk was not
fetched twice, that no request was throttled, that the 226th report call never came.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class RequestRecord:
    """One provider request.

    ``account`` is the shop domain (Shopify) or the Klaviyo account id (``None`` when the
    credentials were not recognised). ``endpoint`` is ``graphql`` or ``bulk_result`` for
    Shopify and the path's resource for Klaviyo (``campaign-values-reports`` …);
    ``operation`` names the GraphQL root fields (``orders``, ``bulkOperationRunQuery``).
    ``created_at_min``/``created_at_max`` are the ``created_at`` bounds of an orders query as
    written in it. ``fault`` is the injected fault (``error``, ``throttle``, ``timeout``,
    ``drop``) or ``None``; ``throttled`` is true only for a genuine THROTTLED or 429 (the
    bucket or a window was short), never for an injected one.
    """

    time: float
    provider: str
    method: str
    path: str
    endpoint: str = ""
    account: str | None = None
    operation: str | None = None
    status: int | None = None
    fault: str | None = None
    throttled: bool = False
    requested_cost: int | None = None
    actual_cost: int | None = None
    created_at_min: str | None = None
    created_at_max: str | None = None
    search: str | None = None
    duration_ms: float = 0.0
    query: str = ""
    revision: str | None = None
    body: Any = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FILTERS = ("provider", "account", "endpoint", "operation", "status", "fault", "throttled")


class RequestLog:
    """A bounded, thread-safe list of :class:`RequestRecord` (oldest dropped first)."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        with self._lock:
            return iter(list(self._records))

    def records(self, *, since: float | None = None, **filters: Any) -> list[RequestRecord]:
        """Records matching every given field value (see ``_FILTERS``) at or after ``since``."""
        unknown = set(filters) - set(_FILTERS)
        if unknown:
            raise ValueError(f"cannot filter requests by {sorted(unknown)}")
        out = []
        for record in self:
            if since is not None and record.time < since:
                continue
            if all(getattr(record, k) == v for k, v in filters.items() if v is not None):
                out.append(record)
        return out

    def query(self, params: dict[str, str]) -> list[RequestRecord]:
        """:meth:`records` from HTTP query parameters (strings), plus ``since`` and ``limit``."""
        unknown = set(params) - {*_FILTERS, "since", "limit"}
        if unknown:
            raise ValueError(f"cannot filter requests by {sorted(unknown)}")
        filters: dict[str, Any] = {}
        since = float(params["since"]) if "since" in params else None
        for key in _FILTERS:
            if key not in params:
                continue
            value: Any = params[key]
            if key == "status":
                value = int(value)
            elif key == "throttled":
                value = value.lower() in ("1", "true", "yes")
            filters[key] = value
        records = self.records(since=since, **filters)
        limit = int(params.get("limit", 0))
        return records[-limit:] if limit else records


RECORD_KEY = "storesync.simulator.record"


def current_record(scope: MutableMapping[str, Any]) -> RequestRecord:
    """The record of the request being handled (created by the simulator's ASGI wrapper)."""
    record: RequestRecord = scope[RECORD_KEY]
    return record

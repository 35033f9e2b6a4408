"""Shopify bulk operations: for periods with more orders than paging should fetch.

A bulk operation runs the orders query on Shopify's side with no page-size or cost limit and
leaves the result as a JSONL file (one order per line) at a URL. :func:`run_bulk_query` starts
it, polls until it ends and returns the URL; :func:`stream_jsonl` reads the file line by line
without holding it in memory. The file's URL is a signed link to Shopify's storage, so the
access token is never sent there.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from storesync.errors import PermanentError, RetryableError
from storesync.providers.events import ProviderEvent, emit
from storesync.providers.shopify_api import PROVIDER, SCOPE_MESSAGE, ShopifyGraphQL
from storesync.providers.shopify_queries import BULK_POLL, BULK_RUN

FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED", "CANCELLED", "EXPIRED"})


@dataclass(frozen=True, slots=True)
class BulkPolling:
    """How a bulk operation is polled: from ``first`` seconds, growing to ``longest``."""

    first: float = 0.5
    longest: float = 5.0
    growth: float = 1.5
    give_up_after: float = 3600.0


async def run_bulk_query(
    api: ShopifyGraphQL, query: str, *, polling: BulkPolling
) -> tuple[str | None, int]:
    """Run ``query`` as a bulk operation; return its JSONL URL (None: no rows) and row count."""
    data = await api.query(BULK_RUN, {"query": query})
    result = data.get("bulkOperationRunQuery") or {}
    user_errors = result.get("userErrors") or []
    if user_errors:
        detail = "; ".join(str(e.get("message")) for e in user_errors)
        if "in progress" in detail.lower():
            raise RetryableError(
                f"another bulk operation is running for the store {api.shop_domain}: {detail}",
                provider=PROVIDER,
                retry_after=60.0,
            )
        raise PermanentError(f"Shopify refused the bulk query: {detail}", provider=PROVIDER)
    operation = result.get("bulkOperation") or {}
    operation_id = operation.get("id")
    if not operation_id:
        raise RetryableError("Shopify did not start the bulk operation", provider=PROVIDER)
    await emit(
        api.events,
        ProviderEvent(PROVIDER, "bulk", "bulk operation started", {"status": "CREATED"}),
    )

    started = time.monotonic()
    delay = polling.first
    while True:
        await asyncio.sleep(delay)
        delay = min(polling.longest, delay * polling.growth)
        node = (await api.query(BULK_POLL, {"id": operation_id})).get("node") or {}
        status = str(node.get("status") or "")
        if status in FINAL_STATUSES:
            break
        if time.monotonic() - started > polling.give_up_after:
            raise RetryableError(
                f"Shopify's bulk operation did not finish in {polling.give_up_after:.0f} s",
                provider=PROVIDER,
            )
    objects = int(node.get("objectCount") or 0)
    await emit(
        api.events,
        ProviderEvent(
            PROVIDER,
            "bulk",
            f"bulk operation {status.lower()}",
            {"status": status, "objects": objects},
        ),
    )
    if status != "COMPLETED":
        code = str(node.get("errorCode") or "")
        if code == "ACCESS_DENIED":
            raise PermanentError(SCOPE_MESSAGE, provider=PROVIDER)
        raise RetryableError(
            f"Shopify's bulk operation ended {status}{f' ({code})' if code else ''}",
            provider=PROVIDER,
        )
    url = node.get("url")
    return (str(url) if url else None), objects


async def stream_jsonl(
    http: httpx.AsyncClient, url: str, *, timeout: float
) -> AsyncIterator[dict[str, Any]]:
    """Yield each JSON object of the JSONL file at ``url`` (floats as Decimal), line by line.

    Transport failures propagate as httpx errors; the caller restarts the whole file.
    """
    async with http.stream("GET", url, timeout=timeout) as response:
        if response.status_code != 200:
            raise RetryableError(
                f"Shopify's bulk result could not be downloaded (HTTP {response.status_code})",
                provider=PROVIDER,
            )
        async for line in response.aiter_lines():
            if line.strip():
                yield json.loads(line, parse_float=Decimal)

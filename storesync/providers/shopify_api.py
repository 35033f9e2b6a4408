"""One paced call to Shopify's Admin GraphQL API, with its answers mapped to storesync errors.

:class:`ShopifyGraphQL` is the only place that talks to Shopify's GraphQL endpoint. Every call:

1. reserves its requested cost in the shop's :class:`~.shopify_pacing.CostBucket` and waits
   if the bucket cannot cover it yet;
2. is sent through :func:`~.http.send` (5xx, timeouts and dropped connections retried);
3. feeds the answer's ``throttleStatus`` back into the bucket;
4. on THROTTLED (HTTP 200 with the error code, or HTTP 429) waits exactly what the bucket
   needs and tries again: throttling is not a failure and burns none of the job's attempts;
5. maps 401/402/403/404/423 and GraphQL errors to :class:`PermanentError` with a message the
   store owner can act on. The access token never appears in a message or a log line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from storesync import store_rules
from storesync.errors import InputError, PermanentError, RetryableError
from storesync.providers.events import ProviderEvent, ProviderEvents, emit
from storesync.providers.http import RetryPolicy, decode_json, parse_retry_after, send
from storesync.providers.shopify_pacing import CostBucket, Grant, ThrottleStatus
from storesync.providers.shopify_queries import requested_cost
from storesync.settings import Settings

PROVIDER = "shopify"
#: Waits shorter than this are routine pacing and not worth an event.
PACED_EVENT_SECONDS = 1.0

SCOPE_MESSAGE = (
    "the Shopify app lacks the read_orders scope (or protected customer data access): "
    "reinstall the app granting read_orders, and approve protected customer data access "
    "for it in the Shopify Partner Dashboard"
)


@dataclass(slots=True)
class CallStats:
    """What one client's calls cost: for job progress, logs and the benchmark."""

    calls: int = 0  # HTTP attempts, throttled and failed ones included
    throttled: int = 0  # THROTTLED answers (HTTP 200 or 429)
    requested_cost: float = 0.0  # sum of requestedQueryCost over answered calls
    actual_cost: float = 0.0  # sum of actualQueryCost over answered calls
    last_requested: float = 0.0


class ShopifyGraphQLError(PermanentError):
    """Shopify refused the query itself (unknown field, bad argument, too costly…)."""

    def __init__(self, message: str, *, codes: frozenset[str]) -> None:
        super().__init__(message, provider=PROVIDER)
        self.codes = codes


def shop_url(settings: Settings, shop_domain: str) -> str:
    """``STORESYNC_SHOPIFY_BASE_URL`` for this shop, once the domain passed the shop rules.

    Every URL that carries the access token is built here, so a domain that is not a
    ``name.myshopify.com`` shop (nor a host ``STORESYNC_SHOPIFY_ALLOWED_HOSTS`` admits) never
    receives it, whatever put it in the database.
    """
    try:
        domain = store_rules.shop_domain(shop_domain, extra_hosts=settings.shop_extra_hosts)
    except InputError:
        raise PermanentError(
            f"the store's shop domain {shop_domain[:80]!r} is not a Shopify shop domain "
            "(name.myshopify.com), so storesync will not send it the access token: remove the "
            "store and add it again with its myshopify.com domain",
            provider=PROVIDER,
        ) from None
    if domain != shop_domain:  # the stored value is always the normalised one
        raise PermanentError(
            f"the store's shop domain {shop_domain[:80]!r} is not in its normal form "
            f"({domain}): remove the store and add it again",
            provider=PROVIDER,
        )
    return settings.shopify_base_url.format(shop=domain)


def endpoint_url(settings: Settings, shop_domain: str) -> str:
    """The shop's GraphQL endpoint from ``STORESYNC_SHOPIFY_BASE_URL`` and the API version."""
    base = shop_url(settings, shop_domain)
    return f"{base}/admin/api/{settings.shopify_api_version}/graphql.json"


def status_error(status: int, shop_domain: str, detail: str) -> PermanentError | None:
    """The permanent error for an HTTP status that retrying cannot fix, or None."""
    messages = {
        401: "the Shopify access token was rejected: update it in the store's settings",
        402: f"the Shopify store {shop_domain} is frozen (its Shopify bill is unpaid): "
        "its data cannot be read until the bill is settled",
        403: SCOPE_MESSAGE,
        404: f"the Shopify store {shop_domain} was not found: check the shop domain in the "
        "store's settings (for example example.myshopify.com)",
        423: f"the Shopify store {shop_domain} is locked by Shopify: its data cannot be read "
        "until Shopify lifts the lock",
    }
    if status in messages:
        return PermanentError(messages[status], provider=PROVIDER)
    if 400 <= status < 500 and status != 429:
        return PermanentError(
            f"Shopify refused the request (HTTP {status}): {detail}", provider=PROVIDER
        )
    return None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_codes(errors: list[Any]) -> frozenset[str]:
    codes = set()
    for error in errors:
        code = ((error or {}).get("extensions") or {}).get("code")
        if code:
            codes.add(str(code))
    return frozenset(codes)


def _error_text(errors: list[Any]) -> str:
    return _short("; ".join(str((e or {}).get("message", e)) for e in errors))


class ShopifyGraphQL:
    """Paced, error-mapped GraphQL calls to one shop."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        shop_domain: str,
        access_token: str,
        bucket: CostBucket,
        events: ProviderEvents | None = None,
        retry: RetryPolicy | None = None,
        max_throttle_seconds: float = 300.0,
    ) -> None:
        self.http = http
        self.settings = settings
        self.shop_domain = shop_domain
        self.url = endpoint_url(settings, shop_domain)
        self._headers = {
            "X-Shopify-Access-Token": access_token,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.bucket = bucket
        self.events = events
        self.retry = retry or RetryPolicy()
        self.max_throttle_seconds = max_throttle_seconds
        #: Requested costs Shopify reported, per (document, page size): better than our guess.
        self._costs: dict[tuple[str, Any], float] = {}
        self.stats = CallStats()

    def __repr__(self) -> str:  # never show the token
        return f"ShopifyGraphQL({self.shop_domain!r})"

    async def query(
        self, document: str, variables: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run ``document`` and return its ``data``; raise a storesync error otherwise."""
        variables = dict(variables or {})
        key = (document, variables.get("first"))
        cost = self._costs.get(key) or float(requested_cost(document, variables))
        request = self.http.build_request(
            "POST",
            self.url,
            headers=self._headers,
            content=json.dumps({"query": document, "variables": variables}).encode(),
            timeout=self.settings.http_timeout_seconds,
        )
        throttle_seconds = 0.0
        quiet = False
        while True:
            turn = _Turn(self, cost, quiet=quiet)
            try:
                response = await send(
                    self.http,
                    request,
                    provider=PROVIDER,
                    policy=self.retry,
                    events=self.events,
                    before_attempt=turn.begin,
                    deadline=self.settings.http_timeout_seconds * 2,
                )
            finally:
                turn.end()  # before observing the answer: see CostBucket.observe
                self.stats.calls += turn.attempts
            wait, body = self._read(response, cost, turn.grant)
            if body is not None:
                self._remember_cost(key, body)
                return self._data(body)
            self.stats.throttled += 1
            throttle_seconds += wait
            if throttle_seconds > self.max_throttle_seconds:
                raise RetryableError(
                    f"Shopify kept throttling the store {self.shop_domain} for "
                    f"{throttle_seconds:.0f} s (another app may be using its API budget)",
                    provider=PROVIDER,
                    retry_after=wait,
                )
            await emit(
                self.events,
                ProviderEvent(
                    PROVIDER,
                    "throttled",
                    f"Shopify throttled a call; waiting {wait:.2f} s for its cost bucket",
                    {"wait_seconds": round(wait, 3), "status": response.status_code},
                ),
            )
            # The bucket now knows Shopify's reading, so the next turn's pacing waits what the
            # bucket needs; a 429's Retry-After may ask for longer than that arithmetic.
            bucket_wait = self._bucket_wait(cost)
            if wait > bucket_wait:
                await asyncio.sleep(wait - bucket_wait)
            quiet = True

    def _bucket_wait(self, cost: float) -> float:
        rate = self.bucket.restore_rate
        if not rate:
            return 0.0
        return max(0.0, (cost - self.bucket.available()) / rate)

    def _read(
        self, response: httpx.Response, cost: float, grant: Grant | None
    ) -> tuple[float, dict[str, Any] | None]:
        """``(0, body)`` for an answer, ``(seconds to wait, None)`` when throttled."""
        if response.status_code == 429:
            status = self._status_of(response)
            if status is not None:
                self.bucket.observe(status, grant)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is None and status is None:
                return 1.0, None  # Shopify said nothing about when: a short, fixed pause
            return max(retry_after or 0.0, self._bucket_wait(cost)), None
        body = self._body(response)
        status = ThrottleStatus.from_extensions(body.get("extensions"))
        if status is not None:
            self.bucket.observe(status, grant)
        if "THROTTLED" not in _error_codes(body.get("errors") or []):
            return 0.0, body
        if status is None:
            return 1.0, None
        return self._bucket_wait(cost), None

    def _status_of(self, response: httpx.Response) -> ThrottleStatus | None:
        try:
            body = json.loads(response.content)
        except ValueError:
            return None
        return ThrottleStatus.from_extensions(body.get("extensions")) if body else None

    def _body(self, response: httpx.Response) -> dict[str, Any]:
        error = status_error(response.status_code, self.shop_domain, _short(response.text))
        if error is not None:
            raise error
        body = decode_json(response, provider=PROVIDER)
        if not isinstance(body, dict):
            raise RetryableError("Shopify answered with an unexpected body", provider=PROVIDER)
        return body

    def _remember_cost(self, key: tuple[str, Any], body: Mapping[str, Any]) -> None:
        cost = (body.get("extensions") or {}).get("cost") or {}
        requested, actual = cost.get("requestedQueryCost"), cost.get("actualQueryCost")
        if requested is not None:
            self._costs[key] = float(requested)
            self.stats.requested_cost += float(requested)
            self.stats.last_requested = float(requested)
        if actual is not None:
            self.stats.actual_cost += float(actual)

    def _data(self, body: Mapping[str, Any]) -> dict[str, Any]:
        errors = body.get("errors") or []
        if errors:
            codes = _error_codes(errors)
            detail = _error_text(errors)
            if "ACCESS_DENIED" in codes:
                raise PermanentError(f"{SCOPE_MESSAGE} ({detail})", provider=PROVIDER)
            if codes & {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}:
                raise RetryableError(f"Shopify failed to answer: {detail}", provider=PROVIDER)
            if "MAX_COST_EXCEEDED" in codes:
                detail = f"a storesync query asked for more than Shopify allows ({detail})"
            raise ShopifyGraphQLError(
                f"Shopify rejected a storesync query (a storesync bug or an unsupported API "
                f"version {self.settings.shopify_api_version}): {detail}",
                codes=codes,
            )
        data = body.get("data")
        if not isinstance(data, dict):
            raise RetryableError("Shopify answered without data", provider=PROVIDER)
        return data


class _Turn:
    """One call's place in the cost bucket, taken again before each transient retry."""

    def __init__(self, api: ShopifyGraphQL, cost: float, *, quiet: bool) -> None:
        self.api = api
        self.cost = cost
        self.quiet = quiet  # the wait was already reported as "throttled"
        self.grant: Grant | None = None  # the last attempt's (kept after release)
        self.held = False
        self.attempts = 0

    async def begin(self) -> None:
        self.end()
        reported = self.quiet
        while not isinstance(taken := self.api.bucket.take(self.cost), Grant):
            if taken >= PACED_EVENT_SECONDS and not reported:
                reported = True
                await emit(
                    self.api.events,
                    ProviderEvent(
                        PROVIDER,
                        "paced",
                        f"waiting {taken:.1f} s for Shopify's cost bucket to refill",
                        {"wait_seconds": round(taken, 3)},
                    ),
                )
            await asyncio.sleep(taken)
        self.grant, self.held = taken, True
        self.attempts += 1

    def end(self) -> None:
        if self.held and self.grant is not None:
            self.api.bucket.release(self.grant)
        self.held = False

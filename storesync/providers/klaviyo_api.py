"""Paced calls to Klaviyo's JSON:API, with its answers mapped to storesync errors.

:class:`KlaviyoAPI` is the only place that talks to Klaviyo. Every call waits for its endpoint
group's :class:`~.klaviyo_pacing.WindowLimiter` (shared by every client of the account in the
process), goes through :func:`~.http.send` (5xx, timeouts and dropped connections retried),
honours ``Retry-After`` on 429 without counting it as a failure, and maps JSON:API errors:
401 and 403 (naming the missing scope) and 400 are permanent, the rest retryable. The private
key never appears in a message or a log line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from storesync.errors import PermanentError, RetryableError
from storesync.providers.events import ProviderEvent, ProviderEvents, emit
from storesync.providers.http import RetryPolicy, decode_json, parse_retry_after, send
from storesync.providers.klaviyo_pacing import KlaviyoRateLimits, group_of, limiter_for
from storesync.settings import Settings

PROVIDER = "klaviyo"
JSON_API = "application/vnd.api+json"

#: The private key scope each endpoint needs, for a 403's message.
SCOPES: Mapping[str, str] = {
    "/api/accounts": "accounts:read",
    "/api/metrics": "metrics:read",
    "/api/metric-aggregates": "metrics:read",
    "/api/campaigns": "campaigns:read",
    "/api/campaign-values-reports": "campaigns:read",
    "/api/flows": "flows:read",
    "/api/flow-values-reports": "flows:read",
}


def _scope(path: str) -> str:
    for prefix, scope in SCOPES.items():
        if path.startswith(prefix):
            return scope
    return "the read scopes"


def error_detail(response: httpx.Response) -> str:
    """The ``detail`` (or title) of a JSON:API error answer, shortened."""
    try:
        errors = json.loads(response.content).get("errors") or []
    except (ValueError, AttributeError):
        return " ".join(response.text.split())[:300]
    parts = [str(e.get("detail") or e.get("title") or e.get("code")) for e in errors if e]
    return "; ".join(parts)[:300] or f"HTTP {response.status_code}"


def status_error(response: httpx.Response, path: str) -> PermanentError | None:
    """The permanent error for an answer retrying cannot fix, or None."""
    status = response.status_code
    if status == 401:
        return PermanentError(
            "the Klaviyo private key was rejected: create a new private key in Klaviyo "
            "(Settings → API keys) and update it in the store's settings",
            provider=PROVIDER,
        )
    if status == 403:
        return PermanentError(
            f"the Klaviyo private key lacks the {_scope(path)} scope: give the key read access "
            f"to accounts, metrics, campaigns and flows ({error_detail(response)})",
            provider=PROVIDER,
        )
    if 400 <= status < 500 and status != 429:
        return PermanentError(
            f"Klaviyo refused the request to {path} (HTTP {status}): {error_detail(response)}",
            provider=PROVIDER,
        )
    return None


def key_fingerprint(private_key: str) -> str:
    """A stable, non-reversible name for a private key (for pacing and caches, never logs of
    the key itself)."""
    return "key:" + hashlib.sha256(private_key.encode()).hexdigest()[:16]


def account_cache_key(fingerprint: str) -> str:
    """The provider-cache key under which a key's Klaviyo account id is kept."""
    return f"klaviyo:{fingerprint}:account"


class KlaviyoAPI:
    """Paced, error-mapped calls with one private key."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        private_key: str,
        events: ProviderEvents | None = None,
        retry: RetryPolicy | None = None,
        limits: KlaviyoRateLimits | None = None,
        max_throttle_seconds: float = 180.0,
    ) -> None:
        self.http = http
        self.settings = settings
        self.base = settings.klaviyo_base_url
        self._headers = {
            "Authorization": f"Klaviyo-API-Key {private_key}",
            "revision": settings.klaviyo_revision,
            "Accept": JSON_API,
        }
        self.events = events
        self.retry = retry or RetryPolicy()
        self.limits = limits or KlaviyoRateLimits()
        self.max_throttle_seconds = max_throttle_seconds
        # The account's limits are shared by all its keys, but the account is only known after
        # the first call: until then, pace by a fingerprint of the key (never the key itself).
        self.fingerprint = key_fingerprint(private_key)
        self.account_id: str | None = None
        self.calls = 0
        self.throttled = 0

    def __repr__(self) -> str:  # never show the key
        return f"KlaviyoAPI({self.account_id or self.fingerprint!r})"

    def url(self, path_or_link: str) -> str:
        """The absolute URL of an API path (``/api/…``) or of a link Klaviyo returned.

        The private key goes with the request, so a link is followed only when its scheme,
        host and port are the configured base URL's; anything else (another host, a lookalike
        such as ``.evil.example.com/…``, a protocol-relative ``//host``) is refused. The base
        URL's path (an API gateway's prefix) is kept exactly once.
        """
        base = urlsplit(self.base)
        if path_or_link.startswith("/") and not path_or_link.startswith("//"):
            return self.base + path_or_link
        link = urlsplit(path_or_link)
        if link.scheme in ("http", "https") and _origin(link) == _origin(base):
            path = link.path
            if base.path and not (path == base.path or path.startswith(base.path + "/")):
                path = base.path + path
            return urlunsplit((base.scheme, base.netloc, path, link.query, ""))
        raise PermanentError(
            f"Klaviyo returned a link to {_shown(link)}, not to the configured "
            f"STORESYNC_KLAVIYO_BASE_URL ({base.scheme}://{base.netloc}): it was not followed, "
            "so that the private key is only sent to the configured host",
            provider=PROVIDER,
        )

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET ``path`` (or a ``links.next`` URL) and return the JSON:API document."""
        return await self.call("GET", path, params=params)

    async def paginate(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every resource object of a list endpoint, following ``links.next``."""
        document = await self.get(path, params)
        while True:
            for item in document.get("data") or []:
                yield item
            following = (document.get("links") or {}).get("next")
            if not following:
                return
            document = await self.get(following)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        before_attempt: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """One paced call; ``before_attempt`` runs before each HTTP attempt (report budget)."""
        url = self.url(path)
        api_path = urlsplit(url).path[len(urlsplit(self.base).path) :]
        group = group_of(api_path)
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = JSON_API
        request = self.http.build_request(
            method,
            url,
            params=params,
            headers=headers,
            content=json.dumps(body).encode() if body is not None else None,
            timeout=self.settings.http_timeout_seconds,
        )

        async def pace() -> None:
            if before_attempt is not None:
                await before_attempt()
            limiter = limiter_for(self.account_id or self.fingerprint, group, self.limits)
            waited = await limiter.acquire()
            self.calls += 1
            if waited >= 1.0:
                await emit(
                    self.events,
                    ProviderEvent(
                        PROVIDER,
                        "paced",
                        f"waited {waited:.1f} s for Klaviyo's {group} rate limit",
                        {"wait_seconds": round(waited, 3), "group": group},
                    ),
                )

        throttled_for = 0.0
        while True:
            response = await send(
                self.http,
                request,
                provider=PROVIDER,
                policy=self.retry,
                events=self.events,
                before_attempt=pace,
                deadline=self.settings.http_timeout_seconds * 2,
            )
            limiter = limiter_for(self.account_id or self.fingerprint, group, self.limits)
            limiter.answered()
            if response.status_code != 429:
                error = status_error(response, api_path)
                if error is not None:
                    raise error
                self._note_window(response, limiter.block_for)
                document = decode_json(response, provider=PROVIDER)
                if not isinstance(document, dict):
                    raise RetryableError(
                        "Klaviyo answered with an unexpected body", provider=PROVIDER
                    )
                return document
            wait = parse_retry_after(response.headers.get("Retry-After"))
            wait = 1.0 if wait is None else wait
            self.throttled += 1
            throttled_for += wait
            if throttled_for > self.max_throttle_seconds:
                # Typically the daily report limit, spent by another integration of the
                # account: the job is deferred rather than kept waiting for hours.
                until = datetime.now(UTC) + timedelta(seconds=wait)
                raise RetryableError(
                    f"Klaviyo's {group} rate limit is used up (by storesync or another "
                    f"integration of the account) until {until:%Y-%m-%d %H:%M} UTC",
                    provider=PROVIDER,
                    retry_after=wait,
                    retry_at=until,
                )
            limiter.block_for(wait)
            await emit(
                self.events,
                ProviderEvent(
                    PROVIDER,
                    "throttled",
                    f"Klaviyo throttled a {group} call; waiting {wait:.0f} s (Retry-After)",
                    {"wait_seconds": wait, "status": 429, "group": group},
                ),
            )

    @staticmethod
    def _note_window(response: httpx.Response, block_for: Callable[[float], None]) -> None:
        # RateLimit-Remaining: 0 means the steady window is spent, possibly by another
        # integration: wait for its reset rather than collect a 429.
        remaining = _leading_number(response.headers.get("RateLimit-Remaining"))
        reset = _leading_number(response.headers.get("RateLimit-Reset"))
        if remaining is not None and remaining <= 0 and reset is not None:
            block_for(reset)


def _leading_number(value: str | None) -> float | None:
    if not value:
        return None
    head = value.split(";")[0].split(",")[0].strip()
    try:
        return float(head)
    except ValueError:
        return None


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default port made explicit) of a URL."""
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: matches nothing
        return ("", "", -1)
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def _shown(link: SplitResult) -> str:
    """A link's scheme and host only (its query may carry anything)."""
    host = link.netloc.rsplit("@", 1)[-1] if link.netloc else ""
    return f"{link.scheme}://{host}" if link.scheme else repr(link.path.split("/")[0][:80])

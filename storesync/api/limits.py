"""Request body limits per route, enforced while the body streams in.

:class:`BodyLimitMiddleware` is a pure ASGI middleware (not Starlette's ``BaseHTTPMiddleware``,
which buffers): it sits in front of everything else, so a body over its route's limit is
refused with 413 before any route parses it or checks who sent it. FastAPI reads a JSON body
before it runs a route's dependencies (the bearer token among them), and the webhook route
needs the whole body to check its signature, so without this an anonymous caller could make
the server hold a body of any size.

- A declared ``Content-Length`` over the limit is answered at once; not a byte is read.
- A body without one (``Transfer-Encoding: chunked``) is counted as it arrives, and refused as
  soon as the count passes the limit; what follows is never read.
- The 413 carries ``Connection: close``, so the server drops the connection rather than
  reading the rest of an upload to reach the next request; so does any answer given before
  the app read the whole body (a route that needs none, a refusal before reading).

Which limit applies is decided by the path's prefix (:func:`route_limits`): Shopify webhooks
get room for Shopify's largest payloads, the JSON API and the web forms small limits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storesync.settings import Settings


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The largest body accepted under each path prefix (the first prefix matching wins),
    and ``default`` for every other path."""

    prefixes: Sequence[tuple[str, int]]
    default: int

    def for_path(self, path: str) -> int:
        for prefix, limit in self.prefixes:
            if path.startswith(prefix):
                return limit
        return self.default


def route_limits(settings: Settings) -> BodyLimits:
    """The limits of storesync's routes: webhooks, the JSON API, and the web pages' forms."""
    return BodyLimits(
        prefixes=(
            ("/webhooks/", settings.webhook_max_body_bytes),
            ("/api/", settings.api_max_body_bytes),
        ),
        default=settings.form_max_body_bytes,
    )


class BodyTooLarge(Exception):
    """Raised into the app when the streamed body passes its limit (the app cannot use the
    body any more; the middleware answers 413 whatever the app makes of the error)."""


class BodyLimitMiddleware:
    """Refuses request bodies larger than their route's limit with 413, before the app reads
    them (declared length) or as soon as the count passes it (streamed bodies)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        try:
            declared = _content_length(scope)
        except ValueError:
            await _answer(send, 400, "the Content-Length header is not a byte count")
            return
        if declared is not None and declared > limit:
            await _answer(send, 413, _too_large(limit))
            return
        expected = bool(declared) or any(n == b"transfer-encoding" for n, _ in scope["headers"])
        guard = _Guard(receive, send, limit, body_expected=expected)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            # BodyTooLarge itself, or whatever the app made of it: the answer is the 413.
            # (Had the app started answering before the excess, nothing can be mended.)
            if not guard.exceeded or guard.passed_on:
                raise
        await guard.refuse()


class _Guard:
    """Counts the body as the app receives it. Once over the limit, the app gets
    :class:`BodyTooLarge` from ``receive``, and whatever it answers is replaced by the 413."""

    def __init__(self, receive: Receive, send: Send, limit: int, *, body_expected: bool) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.received = 0
        self.body_read = not body_expected  # the app has received the body to its end
        self.exceeded = False
        self.passed_on = False  # the app's answer started going out (before any excess)
        self.refused = False  # the 413 went out instead of the app's answer

    async def receive(self) -> Message:
        if self.exceeded:
            raise BodyTooLarge()
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.exceeded = True
                raise BodyTooLarge()
            self.body_read = not message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            self.body_read = True
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the rest of the app's own answer
        if self.exceeded and not self.passed_on:
            # Frameworks may turn the error into an answer of their own (FastAPI makes any
            # error while reading a JSON body a 400): the caller gets the 413 instead.
            await self.refuse()
            return
        if message["type"] == "http.response.start" and not self.body_read:
            # Answered without reading the body (a refusal, or a route that needs none): the
            # server would read the rest, however long, to reach the next request. Close.
            headers = [(n, v) for n, v in message.get("headers", ()) if n.lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        self.passed_on = True
        await self._send(message)

    async def refuse(self) -> None:
        """Send the 413, once, if the body went over the limit and nothing was answered."""
        if self.exceeded and not self.passed_on and not self.refused:
            self.refused = True
            await _answer(self._send, 413, _too_large(self.limit))


def _content_length(scope: Scope) -> int | None:
    """The declared body length, None when not declared; ValueError when not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            if not (text.isascii() and text.isdigit()):
                raise ValueError(text)
            return int(text)
    return None


def _too_large(limit: int) -> str:
    return f"the request body is larger than this route accepts ({limit:,} bytes)"


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

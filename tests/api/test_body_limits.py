"""Request body limits: a body over its route's limit is refused with 413 before any route
parses it or checks who sent it, whether its length is declared or it streams in chunks.

The first tests drive the middleware in-process; the last ones upload 256 MiB to a real
``storesync serve`` process (unsigned to the webhook route, without a token to the API, and
as a sign-in form) and watch the server's memory (psutil RSS) while it refuses them.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from storesync.api.limits import BodyLimitMiddleware, BodyLimits, route_limits
from storesync.settings import Settings
from tests.api.support import Deployment

MiB = 1024 * 1024
LIMITS = BodyLimits(prefixes=(("/webhooks/", 4096), ("/api/", 2048)), default=1024)


class Item(BaseModel):
    text: str


def limited_app() -> tuple[BodyLimitMiddleware, list[int]]:
    """A small FastAPI app behind the middleware; ``seen`` records the body sizes routes got."""
    app = FastAPI()
    seen: list[int] = []

    @app.post("/webhooks/raw")
    async def raw(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(len(body))
        return {"size": len(body)}

    @app.post("/api/items")
    async def items(item: Item) -> dict[str, int]:  # FastAPI reads and parses the body
        seen.append(len(item.text))
        return {"size": len(item.text)}

    @app.post("/webhooks/ignore")
    async def ignore() -> dict[str, str]:  # answers without reading the body
        return {"read": "nothing"}

    @app.post("/form")
    async def form(request: Request) -> dict[str, int]:
        posted = await request.form()
        seen.append(len(str(posted.get("text", ""))))
        return {"size": seen[-1]}

    return BodyLimitMiddleware(app, LIMITS), seen


async def chunks(total: int, size: int = 500) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, list[int]]]:
    app, seen = limited_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http, seen


async def test_declared_lengths_over_the_limit_are_refused_before_the_route_runs(
    client: tuple[httpx.AsyncClient, list[int]],
) -> None:
    http, seen = client
    assert (await http.post("/webhooks/raw", content=b"x" * 4096)).json() == {"size": 4096}
    refused = await http.post("/webhooks/raw", content=b"x" * 4097)
    assert refused.status_code == 413
    assert refused.headers["connection"] == "close"
    assert refused.json() == {
        "detail": "the request body is larger than this route accepts (4,096 bytes)"
    }
    # Each prefix has its own limit; other paths (the web forms) get the default.
    assert (await http.post("/api/items", content=b"x" * 2049)).status_code == 413
    assert (await http.post("/form", content=b"x" * 1025)).status_code == 413
    assert seen == [4096]


async def test_streamed_bodies_are_counted_and_cut_off_at_the_limit(
    client: tuple[httpx.AsyncClient, list[int]],
) -> None:
    http, seen = client
    fits = await http.post("/webhooks/raw", content=chunks(4096))
    assert fits.json() == {"size": 4096}
    for path in ("/webhooks/raw", "/api/items", "/form"):
        # FastAPI turns an error while reading a JSON body into a 400, and form parsing has
        # its own errors: the answer is the 413 all the same.
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        refused = await http.post(path, content=chunks(10 * MiB), headers=form)
        assert (path, refused.status_code) == (path, 413)
        assert "larger than this route accepts" in refused.json()["detail"]
    assert seen == [4096]


async def test_an_answer_given_before_the_body_was_read_closes_the_connection(
    client: tuple[httpx.AsyncClient, list[int]],
) -> None:
    """Else the server would read (and drop) the rest of the body, however long, to reach
    the connection's next request."""
    http, _ = client
    for body in (b"x" * 100, chunks(3000)):
        unread = await http.post("/webhooks/ignore", content=body)
        assert (unread.status_code, unread.headers["connection"]) == (200, "close")
    read = await http.post("/webhooks/raw", content=chunks(3000))
    assert read.status_code == 200
    assert "connection" not in read.headers  # keep-alive as usual
    assert "connection" not in (await http.get("/webhooks/ignore")).headers  # no body at all


async def test_a_content_length_that_is_not_a_number_is_a_400(
    client: tuple[httpx.AsyncClient, list[int]],
) -> None:
    http, _ = client
    # The last: "²" (latin-1), which Python's str.isdigit() takes for a digit.
    for value in (b"-1", b"1e9", b"0x10", "²".encode("latin-1")):
        answer = await http.post("/form", content=b"", headers={b"Content-Length": value})
        assert (value, answer.status_code) == (value, 400)


def test_the_routes_limits_come_from_the_settings() -> None:
    settings = Settings(
        webhook_max_body_bytes=5000, api_max_body_bytes=3000, form_max_body_bytes=2000
    )
    limits = route_limits(settings)
    assert limits.for_path("/webhooks/shopify") == 5000
    assert limits.for_path("/api/stores") == 3000
    assert limits.for_path("/stores/1/settings") == 2000
    assert limits.for_path("/sign-in") == 2000
    defaults = route_limits(Settings())
    assert (defaults.for_path("/webhooks/shopify"), defaults.for_path("/api/x")) == (
        10 * MiB,
        MiB,
    )


# -- a real server, a real upload -------------------------------------------------------------


@dataclass
class Upload:
    status: int
    body: dict[str, Any]
    sent: int  # body bytes the server let the client send before answering


def upload(
    url: str, path: str, total: int, *, declare: bool, content_type: str, chunk: int = MiB
) -> Upload:
    """POST ``total`` bytes to ``path`` over a raw socket, with ``Content-Length`` or chunked;
    sending and reading at once, so that the server's answer is read even while the upload
    is still under way (or cut off)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    framing = f"Content-Length: {total}" if declare else "Transfer-Encoding: chunked"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n"
        f"{framing}\r\n\r\n"
    ).encode()
    sock.sendall(head)
    sock.setblocking(False)
    payload = b"[" * chunk
    pending, sent, response = b"", 0, b""
    sending = True
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if sending and not pending:
                if sent >= total:
                    pending = b"" if declare else b"0\r\n\r\n"
                    sending = bool(pending)
                else:
                    piece = payload[: min(chunk, total - sent)]
                    pending = piece if declare else f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                    sent += len(piece)
            readable, writable, _ = select.select([sock], [sock] if sending else [], [], 10)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                response += data
                if not data or _complete(response):
                    break
            if writable and pending:
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError):
                    sending, pending = False, b""
                    if not readable:
                        continue
        status_line, _, rest = response.partition(b"\r\n")
        body = rest.partition(b"\r\n\r\n")[2]
        return Upload(int(status_line.split()[1]), json.loads(body), sent)
    finally:
        sock.close()


def _complete(response: bytes) -> bool:
    head, found, body = response.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


class PeakMemory:
    """Samples a process's resident memory every few milliseconds in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.baseline: int = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.process.memory_info().rss)

    @contextmanager
    def watch(self) -> Iterator[PeakMemory]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


BIG = 256 * MiB


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])  # the database plays no part in this
@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
def test_huge_anonymous_bodies_are_refused_without_the_server_holding_them(
    deployment: Deployment, declare: bool
) -> None:
    url = deployment.serve(worker=False)
    server = deployment.processes[-1]
    # Warm up the routes (imports, the first connection to the database) before measuring.
    assert httpx.post(f"{url}/webhooks/shopify", content=b"{}").status_code == 401
    assert httpx.post(f"{url}/api/stores", json={}).status_code == 401

    limits = route_limits(Settings())
    form = "application/x-www-form-urlencoded"
    for path, kind in (
        ("/webhooks/shopify", "application/json"),
        ("/api/stores", "application/json"),
        ("/sign-in", form),  # the web pages' forms, as a browser posts them
    ):
        with PeakMemory(server.pid).watch() as memory:
            refused = upload(url, path, BIG, declare=declare, content_type=kind)
        limit = limits.for_path(path)
        assert (path, refused.status) == (path, 413)
        assert refused.body == {
            "detail": f"the request body is larger than this route accepts ({limit:,} bytes)"
        }
        # The server stopped reading: what got through is the limit and the sockets' buffers,
        # not the 256 MiB offered; and it never held the body in memory.
        assert refused.sent < limit + 32 * MiB, (path, refused.sent)
        assert memory.growth < 48 * MiB, (path, memory.growth / MiB)
    # It still serves (the refusals cost it nothing lasting).
    assert httpx.get(f"{url}/healthz").status_code == 200

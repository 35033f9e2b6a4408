"""Klaviyo's REST endpoints: accounts, metrics, campaigns, flows, the values reports and
metric aggregates.

The simulator speaks one revision, :data:`REVISION` (the one storesync pins; the official
SDK's release of it checks the simulator in ``tests/providers/contract``). Every request
passes the same gate, in this order: injected faults, the private key (401
``not_authenticated``), the ``revision`` header (400 ``invalid``; any revision but
:data:`REVISION` too), the key's scope (403 ``permission_denied``), the query parameters the
revision defines for the endpoint (400 ``invalid`` naming an unknown one) and the account's
fixed-window limits for the endpoint group (429 ``throttled`` with ``Retry-After`` in whole
seconds). Report bodies with a key the revision's request model does not define are refused
with a 400 too, so a request the real API would refuse never passes here. Answers use JSON:API
bodies with ``application/vnd.api+json``; successful ones carry
``RateLimit-Limit/Remaining/Reset`` for the steady (per-minute) window. The two report endpoints
share one group, so their daily budget (225 by default) is one budget per account.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storesync.simulator.audit import klaviyo_group
from storesync.simulator.config import SimStore
from storesync.simulator.data import StoreData
from storesync.simulator.klaviyo_aggregates import aggregate, parse_query
from storesync.simulator.klaviyo_filters import FilterError, compile_filter
from storesync.simulator.klaviyo_reports import (
    ReportError,
    decode_page,
    encode_page,
    parse_request,
    report_rows,
)
from storesync.simulator.klaviyo_resources import (
    CAMPAIGN_FIELDS,
    CAMPAIGN_OPERATORS,
    FLOW_FIELDS,
    FLOW_OPERATORS,
    METRIC_FIELDS,
    METRIC_OPERATORS,
    Fields,
    Item,
    Operators,
    account_item,
    campaign_items,
    flow_items,
    metric_items,
    public,
)
from storesync.simulator.requestlog import current_record

if TYPE_CHECKING:
    from storesync.simulator.app import Simulator

JSONAPI = "application/vnd.api+json"
#: The one Klaviyo API revision the simulator implements.
REVISION = "2026-10-15"
_REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.pre|\.beta)?$")
#: The query parameters revision 2026-10-15 defines for each endpoint (wire names).
QUERY_PARAMETERS = {
    "accounts": frozenset({"fields[account]"}),
    "metrics": frozenset({"fields[flow]", "fields[metric]", "filter", "include", "page[cursor]"}),
    "campaigns": frozenset(
        {
            "fields[campaign-audience]",
            "fields[campaign-message]",
            "fields[campaign]",
            "fields[tag]",
            "filter",
            "include",
            "page[cursor]",
            "page[size]",
            "sort",
        }
    ),
    "flows": frozenset(
        {
            "fields[flow-action]",
            "fields[flow]",
            "fields[tag]",
            "filter",
            "include",
            "page[cursor]",
            "page[size]",
            "sort",
        }
    ),
    "campaign-values-reports": frozenset({"fields[campaign-values-report]", "page_cursor"}),
    "flow-values-reports": frozenset({"fields[flow-values-report]", "page_cursor"}),
    "metric-aggregates": frozenset({"fields[metric-aggregate]"}),
}
_SCOPE = {
    "accounts": "accounts:read",
    "metrics": "metrics:read",
    "campaigns": "campaigns:read",
    "flows": "flows:read",
    "campaign-values-reports": "campaigns:read",
    "flow-values-reports": "flows:read",
    "metric-aggregates": "metrics:read",
}


def jsonapi(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers, media_type=JSONAPI)


def error(
    status: int,
    code: str,
    title: str,
    detail: str,
    source: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON:API error response."""
    item = {
        "id": str(uuid.uuid4()),
        "status": status,
        "code": code,
        "title": title,
        "detail": detail,
        "source": source or {"pointer": "/data/"},
    }
    return jsonapi({"errors": [item]}, status, headers)


def invalid(detail: str, source: dict[str, str] | None = None) -> Response:
    return error(400, "invalid", "Invalid input.", detail, source)


class KlaviyoEndpoints:
    """The Klaviyo API of one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        table: list[tuple[str, Callable[[Request], Any], str]] = [
            ("accounts", self.accounts, "GET"),
            ("metrics", self.metrics, "GET"),
            ("campaigns", self.campaigns, "GET"),
            ("flows", self.flows, "GET"),
            ("campaign-values-reports", self.campaign_report, "POST"),
            ("flow-values-reports", self.flow_report, "POST"),
            ("metric-aggregates", self.metric_aggregates, "POST"),
        ]
        routes = []
        for name, handler, method in table:
            routes.append(Route(f"/api/{name}", handler, methods=[method]))
            routes.append(Route(f"/api/{name}/", handler, methods=[method]))
        return routes

    async def _gate(
        self, request: Request, endpoint: str
    ) -> tuple[SimStore, dict[str, str]] | Response:
        record = current_record(request.scope)
        record.provider, record.endpoint = "klaviyo", endpoint
        record.revision = request.headers.get("revision")
        auth = request.headers.get("authorization", "")
        store = (
            self.sim.find_klaviyo(auth.removeprefix("Klaviyo-API-Key ").strip())
            if auth.startswith("Klaviyo-API-Key ")
            else None
        )
        if store is not None:
            # Noted before the fault draw, so that an injected 429 can be matched with the
            # account's next call (did the client honour its Retry-After?).
            record.account = store.klaviyo_account_id
        kind = await self.sim.faults.before(request, "klaviyo")
        if kind == "throttle":  # injected: the log says fault="throttle", throttled stays False
            return error(
                429,
                "throttled",
                "Request was throttled.",
                "Request was throttled. Expected available in 1 second.",
                headers={"Retry-After": "1"},
            )
        if kind == "error":
            if self.sim.faults.pick(2):
                return error(
                    503, "service_unavailable", "Service unavailable.", "Please try again later."
                )
            return error(500, "error", "A server error occurred.", "A server error occurred.")
        if store is None or store.klaviyo_key_revoked:
            record.account = None
            return error(
                401,
                "not_authenticated",
                "Authentication credentials were not provided.",
                "Missing or invalid private key.",
            )
        revision = request.headers.get("revision")
        if not revision:
            return invalid("The 'revision' header is required.", {"header": "revision"})
        if not _REVISION.match(revision) or revision[:10] < "2023-02-22":
            return invalid(f"'{revision}' is not a valid revision.", {"header": "revision"})
        if revision != REVISION:
            detail = f"The simulator implements revision {REVISION} only, not '{revision}'."
            return invalid(detail, {"header": "revision"})
        if _SCOPE[endpoint] not in store.klaviyo_scopes:
            return error(
                403,
                "permission_denied",
                "You do not have permission to perform this action.",
                f"This API key is missing required scopes: {_SCOPE[endpoint]}.",
            )
        for name in request.query_params:
            if name not in QUERY_PARAMETERS[endpoint]:
                detail = f"'{name}' is not a valid query parameter for this endpoint."
                return invalid(detail, {"parameter": name})
        group = klaviyo_group(endpoint)
        decision = self.sim.windows.hit(
            store.klaviyo_account_id,
            group,
            self.sim.config.klaviyo_limits.group(group),
            self.sim.clock(),
        )
        if not decision.allowed:
            record.throttled = True
            seconds = decision.retry_after
            return error(
                429,
                "throttled",
                "Request was throttled.",
                f"Request was throttled. Expected available in {seconds} seconds.",
                headers={"Retry-After": str(seconds)},
            )
        return store, decision.headers

    def _page(
        self, request: Request, items: list[Item], size: int, headers: dict[str, str]
    ) -> Response:
        try:
            offset = decode_page(request.query_params.get("page[cursor]"))
        except ReportError:
            return invalid("The page cursor is invalid.", {"parameter": "page[cursor]"})
        chunk = [public(item) for item in items[offset : offset + size]]
        more = offset + size < len(items)
        cursor = {"page[cursor]": encode_page(offset + size)}
        next_url = str(request.url.include_query_params(**cursor)) if more else None
        links = {"self": str(request.url), "next": next_url, "prev": None}
        return jsonapi({"data": chunk, "links": links}, headers=headers)

    async def _list(
        self,
        request: Request,
        endpoint: str,
        items_of: Callable[[StoreData, str], list[Item]],
        fields: Fields,
        operators: Operators,
        sizes: tuple[int, int] | None,
    ) -> Response:
        """A paged, filtered list endpoint; ``sizes`` is (default, maximum) of page[size]."""
        gate = await self._gate(request, endpoint)
        if isinstance(gate, Response):
            return gate
        store, headers = gate
        size, maximum = sizes or (200, 0)  # metrics: fixed pages of 200, no page[size]
        raw = request.query_params.get("page[size]")
        if sizes is not None and raw is not None:
            if not raw.isdigit() or not 1 <= int(raw) <= maximum:
                detail = f"page[size] must be an integer between 1 and {maximum}."
                return invalid(detail, {"parameter": "page[size]"})
            size = int(raw)
        text = request.query_params.get("filter")
        data = await self.sim.load(store)
        items = items_of(data, str(request.base_url).rstrip("/"))
        if text:
            try:
                keep = compile_filter(text, fields, endpoint.rstrip("s"), operators)
            except FilterError as err:
                return invalid(str(err), {"parameter": "filter"})
            items = [item for item in items if keep(item)]
        return self._page(request, items, size, headers)

    async def accounts(self, request: Request) -> Response:
        gate = await self._gate(request, "accounts")
        if isinstance(gate, Response):
            return gate
        store, headers = gate
        item = account_item(store, str(request.base_url).rstrip("/"))
        links = {"self": str(request.url), "next": None, "prev": None}
        return jsonapi({"data": [item], "links": links}, headers=headers)

    async def metrics(self, request: Request) -> Response:
        return await self._list(
            request, "metrics", metric_items, METRIC_FIELDS, METRIC_OPERATORS, None
        )

    async def campaigns(self, request: Request) -> Response:
        return await self._list(
            request, "campaigns", campaign_items, CAMPAIGN_FIELDS, CAMPAIGN_OPERATORS, (100, 100)
        )

    async def flows(self, request: Request) -> Response:
        return await self._list(request, "flows", flow_items, FLOW_FIELDS, FLOW_OPERATORS, (50, 50))

    async def campaign_report(self, request: Request) -> Response:
        return await self._report(request, "campaign")

    async def flow_report(self, request: Request) -> Response:
        return await self._report(request, "flow")

    @staticmethod
    async def _json_body(request: Request) -> Any:
        """The request's JSON body, noted in the request log; a 400 when it is not JSON."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            return invalid("The request body is not valid JSON.", {"pointer": "/data"})
        current_record(request.scope).body = body
        return body

    async def _report(self, request: Request, kind: str) -> Response:
        gate = await self._gate(request, f"{kind}-values-reports")
        if isinstance(gate, Response):
            return gate
        store, headers = gate
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        data = await self.sim.load(store)
        try:
            report = parse_request(body, kind, data, self.sim.clock())
            offset = decode_page(request.query_params.get("page_cursor"))
            rows = report_rows(data, report, kind)
        except ReportError as err:
            source = (
                {"parameter": err.pointer}
                if err.pointer == "page_cursor"
                else {"pointer": err.pointer}
            )
            return invalid(err.detail, source)
        size = self.sim.config.report_page_size
        chunk = rows[offset : offset + size]
        more = offset + size < len(rows)
        next_url = str(request.url.include_query_params(page_cursor=encode_page(offset + size)))
        ids = sorted({r["groupings"][f"{kind}_id"] for r in chunk})
        payload = {
            "data": {
                "type": f"{kind}-values-report",
                "id": str(uuid.uuid4()),
                "attributes": {"results": chunk},
                "relationships": {f"{kind}s": {"data": [{"type": kind, "id": i} for i in ids]}},
            },
            "links": {"self": str(request.url), "next": next_url if more else None},
        }
        return jsonapi(payload, headers=headers)

    async def metric_aggregates(self, request: Request) -> Response:
        """Query Metric Aggregates; the next page's cursor goes back in the body's
        ``page_cursor`` (``links.next`` carries it as a ``page_cursor`` parameter)."""
        gate = await self._gate(request, "metric-aggregates")
        if isinstance(gate, Response):
            return gate
        store, headers = gate
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        data = await self.sim.load(store)
        try:
            query = parse_query(body, data)
        except ReportError as err:
            return invalid(err.detail, {"pointer": err.pointer})
        dates, rows = aggregate(data, query)
        end = query.offset + query.page_size
        next_url = str(request.url.include_query_params(page_cursor=encode_page(end)))
        payload = {
            "data": {
                "type": "metric-aggregate",
                "id": str(uuid.uuid4()),
                "attributes": {"dates": dates, "data": rows[query.offset : end]},
                "links": {"self": str(request.url)},
            },
            "links": {"self": str(request.url), "next": next_url if end < len(rows) else None},
        }
        return jsonapi(payload, headers=headers)

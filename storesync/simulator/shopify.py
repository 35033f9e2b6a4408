"""Shopify's Admin GraphQL endpoint: authentication, cost, the leaky bucket and execution.

Served at ``POST /shops/{shop}/admin/api/{version}/graphql.json`` (the connector's base-URL
template ``http://HOST:PORT/shops/{shop}``) and at ``POST /admin/api/{version}/graphql.json``
with the shop taken from the ``Host`` header. Order of checks, as on Shopify: the shop, the
token (401), the shop's state (402/423), the scope (403), the query's syntax and validity,
its requested cost (``MAX_COST_EXCEEDED`` above the limit), the bucket (``THROTTLED``), then
execution and the refund of the unused cost. Every answered query carries
``extensions.cost``; syntax and validation errors do not, as on Shopify.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    execute_sync,
    parse,
    validate,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from storesync.simulator.config import SimStore
from storesync.simulator.requestlog import current_record
from storesync.simulator.shopify_cost import CostCalculator, find_operation
from storesync.simulator.shopify_fast import fast_execute
from storesync.simulator.shopify_objects import MutationRoot, QueryRoot, ShopContext
from storesync.simulator.shopify_schema import shopify_error, shopify_schema

if TYPE_CHECKING:
    from storesync.simulator.app import Simulator

_VERSION = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
_DOCS = "https://shopify.dev/api/usage/rate-limits"
_ORDER_FIELDS = frozenset({"orders", "order", "ordersCount", "bulkOperationRunQuery"})
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"  # noqa: S105
MISSING_SCOPE = "This action requires merchant approval for read_orders scope."


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


class ShopifyEndpoint:
    """The GraphQL endpoint and the bulk-result download of one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        return [
            Route("/shops/{shop}/admin/api/{version}/graphql.json", self.graphql, methods=["POST"]),
            Route("/admin/api/{version}/graphql.json", self.graphql, methods=["POST"]),
            Route("/_sim/bulk/{name}", self.bulk_result, methods=["GET"]),
        ]

    def _throttle_status(self, store: SimStore | None) -> dict[str, Any] | None:
        if store is None:
            return None
        return self.sim.bucket(store).status(self.sim.clock())

    def _cost(self, store: SimStore, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": self._throttle_status(store),
            }
        }

    def _fault(self, kind: str, store: SimStore | None) -> Response:
        if kind == "throttle":  # injected: the log says fault="throttle", throttled stays False
            body: dict[str, Any] = {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {"code": "THROTTLED", "documentation": _DOCS},
                    }
                ]
            }
            if store is not None:
                body["extensions"] = {
                    "cost": {
                        "requestedQueryCost": 0,
                        "actualQueryCost": None,
                        "throttleStatus": self._throttle_status(store),
                    }
                }
            # Mostly HTTP 200 as documented for GraphQL; sometimes the REST-style 429.
            if self.sim.faults.pick(2):
                return _json(body, 429, {"Retry-After": "1.0"})
            return _json(body)
        variant = self.sim.faults.pick(3)
        if variant == 0:
            return _json({"errors": "Internal Server Error"}, 500)
        status, text = ((502, "Bad Gateway"), (503, "Service Unavailable"))[variant - 1]
        html = (
            f"<html><head><title>{status} {text}</title></head><body><h1>{text}</h1></body></html>"
        )
        return Response(html, status_code=status, media_type="text/html")

    async def graphql(self, request: Request) -> Response:
        """``POST …/admin/api/{version}/graphql.json``."""
        record = current_record(request.scope)
        record.provider, record.endpoint = "shopify", "graphql"
        domain = request.path_params.get("shop") or request.headers.get("host", "").split(":")[0]
        record.account = domain
        store = self.sim.find_store(domain)
        kind = await self.sim.faults.before(request, "shopify")
        if kind in ("error", "throttle"):
            return self._fault(kind, store)
        if store is None or not _VERSION.match(request.path_params["version"]):
            return _json({"errors": "Not Found"}, 404)
        token = request.headers.get("x-shopify-access-token", "")
        if token != store.shopify_token or store.token_revoked:
            return _json({"errors": INVALID_TOKEN}, 401)
        if store.shop_state == "frozen":
            return _json({"errors": "Unavailable Shop"}, 402)
        if store.shop_state == "locked":
            return _json({"errors": "This shop is unavailable"}, 423)
        payload = _payload(request, await request.body())
        if payload is None:
            return _json({"errors": {"query": "Required parameter missing or invalid"}}, 400)
        can_read = "read_orders" in store.scopes
        if not can_read and store.scope_denial == "http":
            return _json({"errors": MISSING_SCOPE}, 403)
        headers = {
            "X-Shopify-API-Version": request.path_params["version"],
            "X-Request-Id": str(uuid.uuid4()),
        }
        return _json(await self._execute(request, store, payload, can_read), headers=headers)

    async def _execute(
        self, request: Request, store: SimStore, payload: dict[str, Any], can_read: bool
    ) -> dict[str, Any]:
        record = current_record(request.scope)
        schema = shopify_schema()
        document, errors = _checked(payload["query"])
        if document is None:
            return {"errors": errors}
        operation = find_operation(document, payload.get("operationName"))
        if operation is None:
            return {"errors": [{"message": "An operation name is required"}]}
        roots = [s.name.value for s in operation.selection_set.selections if hasattr(s, "name")]
        record.operation = ",".join(roots)
        variables = payload.get("variables") or {}
        calc = CostCalculator(schema, document, operation, variables)
        requested = calc.requested()
        record.requested_cost = requested
        limit = self.sim.config.max_query_cost
        if requested > limit:
            return {
                "errors": [
                    {
                        "message": _max_cost_message(requested, limit),
                        "extensions": {
                            "code": "MAX_COST_EXCEEDED",
                            "cost": requested,
                            "maxCost": limit,
                            "documentation": _DOCS,
                        },
                    }
                ],
                "extensions": self._cost(store, requested, None),
            }
        bucket = self.sim.bucket(store)
        if not bucket.take(requested, self.sim.clock()):
            record.throttled = True
            return {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {"code": "THROTTLED", "documentation": _DOCS},
                    }
                ],
                "extensions": self._cost(store, requested, None),
            }
        data = await self.sim.load(store)
        now = self.sim.clock()
        ctx = ShopContext(
            data=data,
            now=now,
            max_page_size=self.sim.config.max_page_size,
            visible_since=None if "read_all_orders" in store.scopes else int(now) - 60 * 86_400,
            bulk=self.sim.bulk,
            base_url=str(request.base_url).rstrip("/"),
        )
        denied = _ORDER_FIELDS & set(roots)
        if not can_read and denied:
            result_errors = [_access_denied(root) for root in sorted(denied)]
            bucket.refund(requested, now)
            return {
                "data": None,
                "errors": result_errors,
                "extensions": self._cost(store, requested, 0),
            }
        root: Any = MutationRoot(ctx) if calc.is_mutation else QueryRoot(ctx)
        fast = fast_execute(schema, document, operation, variables, root)
        if fast is not None:
            result = ExecutionResult(fast, None)
        else:
            ctx.filters.clear()  # the fast path may have begun: start over
            ctx.search_warnings.clear()
            result = execute_sync(
                schema,
                document,
                root_value=root,
                context_value=ctx,
                variable_values=variables,
                operation_name=payload.get("operationName"),
            )
        actual = calc.actual(result.data)
        bucket.refund(requested - actual, self.sim.clock())
        record.actual_cost = actual
        if ctx.filters:
            record.created_at_min = ctx.filters[0].created_from
            record.created_at_max = ctx.filters[0].created_to
            record.search = ctx.filters[0].query
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        body["extensions"] = self._cost(store, requested, actual)
        if ctx.search_warnings:
            body["extensions"]["search"] = ctx.search_warnings
        return body

    async def bulk_result(self, request: Request) -> Response:
        """``GET /_sim/bulk/{number}.jsonl``: a completed operation's JSONL file."""
        record = current_record(request.scope)
        record.provider, record.endpoint = "shopify", "bulk_result"
        name = request.path_params["name"]
        number = int(name.removesuffix(".jsonl")) if name.removesuffix(".jsonl").isdigit() else -1
        op = self.sim.bulk.get(number)
        if op is None or op.status(self.sim.clock()) != "COMPLETED":
            return Response(
                "<Error><Code>NoSuchKey</Code></Error>", 404, media_type="application/xml"
            )
        record.account = op.shop
        return StreamingResponse(op.rows(), media_type="application/jsonl")


@functools.lru_cache(maxsize=256)
def _checked(query: str) -> tuple[DocumentNode | None, list[dict[str, Any]]]:
    """The parsed document, or the syntax/validation errors (cached: clients repeat queries)."""
    try:
        document = parse(query)
    except GraphQLError as error:
        return None, [dict(error.formatted)]
    errors = validate(shopify_schema(), document)
    if errors:
        return None, [shopify_error(e) for e in errors]
    return document, []


def _payload(request: Request, body: bytes) -> dict[str, Any] | None:
    if request.headers.get("content-type", "").startswith("application/graphql"):
        return {"query": body.decode("utf-8", "replace")}
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return None
    return payload


def _access_denied(field: str) -> dict[str, Any]:
    return {
        "message": f"Access denied for {field} field. Required access: `read_orders` access scope.",
        "extensions": {
            "code": "ACCESS_DENIED",
            "documentation": "https://shopify.dev/api/usage/access-scopes",
            "requiredAccess": "`read_orders` access scope.",
        },
        "path": [field],
    }


def _max_cost_message(cost: int, limit: int) -> str:
    return (
        f"Query cost is {cost}, which exceeds the single query max cost limit ({limit}).\n\n"
        "See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n"
        "cost of a query is calculated.\n\n"
        "To query larger amounts of data with fewer limits, bulk operations should be used "
        "instead.\nSee https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for "
        "usage details.\n"
    )

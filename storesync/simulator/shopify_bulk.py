"""Bulk operations: ``bulkOperationRunQuery``, polling, and the JSONL result file.

An operation runs its query over every matching order; its status is CREATED when made,
RUNNING until ``bulk_seconds`` have passed, then COMPLETED (or FAILED when a fault was drawn).
One query operation at a time per shop, as before API version 2026-01. The result is served
at ``/_sim/bulk/{number}.jsonl`` (no Shopify credentials, like the real storage URL), one JSON
object per order, written while streaming so a 200,000-order file never sits in memory.
A completed operation that matched nothing has ``url: null``, as on Shopify.
"""

from __future__ import annotations

import json
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    validate,
    value_from_ast_untyped,
)

from storesync.simulator.data import StoreData
from storesync.simulator.shopify_objects import OrderNode, ShopContext, wire_time
from storesync.simulator.shopify_schema import shopify_error, shopify_schema
from storesync.simulator.shopify_search import parse_search, select

# (response key, field name, nested plan or None for a leaf)
Plan = list[tuple[str, str, "Plan | None"]]
_ACTIVE = ("CREATED", "RUNNING")


@dataclass(slots=True)
class BulkOperation:
    """One bulk query operation."""

    number: int
    shop: str
    query: str
    data: StoreData
    plan: Plan
    orders: Sequence[int]
    created: float
    duration: float
    failed: bool
    canceled_at: float | None = None

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.number}"

    def status(self, now: float) -> str:
        if self.canceled_at is not None:
            return "CANCELED"
        elapsed = now - self.created
        if elapsed < self.duration:
            return "RUNNING" if elapsed > 0 else "CREATED"
        return "FAILED" if self.failed else "COMPLETED"

    def node(self, base_url: str, now: float, *, fresh: bool = False) -> dict[str, Any]:
        """The ``BulkOperation`` object; ``fresh`` for the mutation's answer (CREATED)."""
        status = "CREATED" if fresh else self.status(now)
        done = status == "COMPLETED"
        total = len(self.orders)
        progress = 1.0 if done else min(1.0, max(0.0, (now - self.created) / (self.duration or 1)))
        count = total if done else int(total * progress * 0.9)
        return {
            "__typename": "BulkOperation",
            "id": self.gid,
            "status": status,
            "errorCode": "INTERNAL_SERVER_ERROR" if status == "FAILED" else None,
            "objectCount": str(count),
            "rootObjectCount": str(count),
            "fileSize": None,
            "url": f"{base_url}/_sim/bulk/{self.number}.jsonl" if done and total else None,
            "partialDataUrl": None,
            "createdAt": wire_time(self.created),
            "completedAt": wire_time(self.created + self.duration) if done else None,
            "query": self.query,
            "type": "QUERY",
        }

    def rows(self, chunk: int = 500) -> Iterator[bytes]:
        """The JSONL result, in chunks of ``chunk`` lines."""
        lines: list[str] = []
        for index in self.orders:
            lines.append(
                json.dumps(project(OrderNode(self.data, index), self.plan), separators=(",", ":"))
            )
            if len(lines) >= chunk:
                yield ("\n".join(lines) + "\n").encode()
                lines = []
        if lines:
            yield ("\n".join(lines) + "\n").encode()


def project(obj: Any, plan: Plan) -> dict[str, Any]:
    """One object's selected fields, as GraphQL would have returned them."""
    row: dict[str, Any] = {}
    for key, name, sub in plan:
        if name == "__typename":
            row[key] = obj.get("__typename") if isinstance(obj, dict) else obj.graphql_type
            continue
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name)
        if sub is not None and value is not None:
            value = (
                [project(v, sub) for v in value] if isinstance(value, list) else project(value, sub)
            )
        row[key] = value
    return row


class _PlanBuilder:
    def __init__(self, document: DocumentNode) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def build(self, selection_set: SelectionSetNode | None) -> Plan:
        plan: Plan = []
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                key = sel.alias.value if sel.alias else sel.name.value
                sub = self.build(sel.selection_set) if sel.selection_set else None
                plan.append((key, sel.name.value, sub))
            elif isinstance(sel, InlineFragmentNode):
                plan.extend(self.build(sel.selection_set))
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in self.fragments:
                plan.extend(self.build(self.fragments[sel.name.value].selection_set))
        return plan


class BulkOperations:
    """Every shop's bulk operations (state shared by all requests of one simulator)."""

    def __init__(self, duration: Callable[[], float], should_fail: Callable[[], bool]) -> None:
        self._duration = duration
        self._should_fail = should_fail
        self._ops: dict[int, BulkOperation] = {}
        self._latest: dict[str, int] = {}
        self._next = 1_000_001
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._ops.clear()
            self._latest.clear()

    def get(self, number: int) -> BulkOperation | None:
        return self._ops.get(number)

    def node(self, ctx: ShopContext, number: int) -> dict[str, Any] | None:
        op = self._ops.get(number)
        if op is None or op.shop != ctx.data.spec.shop_domain:
            return None
        return op.node(ctx.base_url, ctx.now)

    def current(self, ctx: ShopContext) -> dict[str, Any] | None:
        number = self._latest.get(ctx.data.spec.shop_domain)
        return None if number is None else self.node(ctx, number)

    def cancel(self, ctx: ShopContext, number: int) -> dict[str, Any]:
        op = self._ops.get(number)
        if op is None or op.shop != ctx.data.spec.shop_domain:
            return {
                "bulkOperation": None,
                "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
            }
        if op.status(ctx.now) in _ACTIVE:
            op.canceled_at = ctx.now
        return {"bulkOperation": op.node(ctx.base_url, ctx.now), "userErrors": []}

    def run(self, ctx: ShopContext, query: str) -> dict[str, Any]:
        """``bulkOperationRunQuery``: validate, select the orders, start the clock."""
        shop = ctx.data.spec.shop_domain
        with self._lock:
            latest = self._ops.get(self._latest.get(shop, -1))
            if latest is not None and latest.status(ctx.now) in _ACTIVE:
                message = "A bulk query operation for this app and shop is already in progress"
                return _refused(f"{message}: {latest.gid}.", "OPERATION_IN_PROGRESS")
            try:
                plan, orders = self._prepare(ctx, query)
            except GraphQLError as error:
                return _refused(f"Invalid bulk query: {error.message}", "INVALID")
            op = BulkOperation(
                number=self._next,
                shop=shop,
                query=query,
                data=ctx.data,
                plan=plan,
                orders=orders,
                created=ctx.now,
                duration=max(0.0, self._duration()),
                failed=self._should_fail(),
            )
            self._next += 1
            self._ops[op.number] = op
            self._latest[shop] = op.number
        return {"bulkOperation": op.node(ctx.base_url, ctx.now, fresh=True), "userErrors": []}

    def _prepare(self, ctx: ShopContext, query: str) -> tuple[Plan, Sequence[int]]:
        document = parse(query)
        errors = validate(shopify_schema(), document)
        if errors:
            raise GraphQLError(shopify_error(errors[0])["message"])
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
            raise GraphQLError("a bulk query must be a single query operation")
        fields = [s for s in operations[0].selection_set.selections if isinstance(s, FieldNode)]
        orders_field = next((f for f in fields if f.name.value == "orders"), None)
        if orders_field is None:
            raise GraphQLError("Bulk queries must contain at least one connection.")
        args = {a.name.value: value_from_ast_untyped(a.value) for a in orders_field.arguments or ()}
        flt = parse_search(args.get("query"), ctx.data.tz)
        ctx.filters.append(flt)
        sel = select(
            ctx.data,
            flt,
            str(args.get("sortKey") or "PROCESSED_AT"),  # Shopify's default
            bool(args.get("reverse")),
            ctx.visible_since,
        )
        builder = _PlanBuilder(document)
        plan: Plan = []
        for sel_node in orders_field.selection_set.selections if orders_field.selection_set else ():
            if not isinstance(sel_node, FieldNode):
                continue
            if sel_node.name.value == "nodes":
                plan = builder.build(sel_node.selection_set)
            elif sel_node.name.value == "edges" and sel_node.selection_set:
                for inner in sel_node.selection_set.selections:
                    if isinstance(inner, FieldNode) and inner.name.value == "node":
                        plan = builder.build(inner.selection_set)
        if not plan:
            raise GraphQLError("Bulk queries must select the connection's nodes.")
        orders = sel.iter_orders()
        return plan, orders if isinstance(orders, range) else array("i", orders)


def _refused(message: str, code: str) -> dict[str, Any]:
    return {
        "bulkOperation": None,
        "userErrors": [{"field": ["query"], "message": message, "code": code}],
    }

"""The Shopify GraphQL documents storesync sends, and Shopify's query-cost rules.

Shopify charges a query its *requested* cost before running it and refuses any query whose
requested cost is above 1000 points (``MAX_COST_EXCEEDED``). The rules, from Shopify's own
documentation: a scalar or enum field costs 0, an object field 1, a connection
``2 + first × (cost of one node)``, where a node's cost is 1 for the node object plus its
selection (so nested connections multiply), and a mutation 10. :func:`requested_cost`
applies these rules to a document, and :func:`orders_page_size` sizes ``first`` from them, so
the page size follows the selection instead of a hand-tuned constant.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    parse,
    value_from_ast_untyped,
)

#: Shopify refuses a single query that requests more than this many points.
MAX_QUERY_COST = 1000
#: Shopify's largest page for any connection.
MAX_PAGE_SIZE = 250
MUTATION_COST = 10

#: Every order field the figures need (see ``figures.py``); each ``…Set { shopMoney }`` costs 2.
ORDER_FIELDS = """
      id
      createdAt
      cancelledAt
      test
      currentTotalPriceSet { shopMoney { amount currencyCode } }
      subtotalPriceSet { shopMoney { amount } }
      totalDiscountsSet { shopMoney { amount } }
      totalRefundedSet { shopMoney { amount } }
      customer { id numberOfOrders }
      customerJourneySummary { customerOrderIndex }
"""

ORDERS_PAGE = (
    """
query StoresyncOrders($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    pageInfo { hasNextPage endCursor }
    edges { node {"""
    + ORDER_FIELDS
    + """    } }
  }
}
"""
)

#: The query a bulk operation runs (bulk queries take no ``first``; Shopify pages internally).
BULK_ORDERS = (
    """
{
  orders(query: %s, sortKey: CREATED_AT) {
    edges { node {"""
    + ORDER_FIELDS
    + """    } }
  }
}
"""
)

ORDERS_COUNT = """
query StoresyncOrdersCount($query: String!, $limit: Int) {
  ordersCount(query: $query, limit: $limit) { count precision }
}
"""

SHOP_CURRENCY = """
query StoresyncShop { shop { currencyCode } }
"""

BULK_RUN = """
mutation StoresyncBulkRun($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message }
  }
}
"""

BULK_POLL = """
query StoresyncBulkPoll($id: ID!) {
  node(id: $id) {
    ... on BulkOperation { id status errorCode objectCount url }
  }
}
"""


def shopify_time(instant: datetime) -> str:
    """An instant as Shopify's search syntax expects it (UTC, seconds, ``Z``)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def created_between(start: datetime, end: datetime) -> str:
    """The search filter for orders created in ``[start, end)``.

    Shopify is reported to treat ``<`` as ``<=``: the caller still drops orders at ``end``.
    """
    return f"created_at:>='{shopify_time(start)}' AND created_at:<'{shopify_time(end)}'"


def bulk_orders_query(search: str) -> str:
    """The bulk operation's inner query for orders matching ``search``."""
    return BULK_ORDERS % _graphql_string(search)


def _graphql_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def requested_cost(document: str, variables: Mapping[str, Any] | None = None) -> int:
    """The cost Shopify will request for ``document`` (its first operation), by its rules."""
    ast = parse(document)
    fragments = {d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)}
    operation = _operation(ast)
    if operation.operation == OperationType.MUTATION:
        return MUTATION_COST * len(operation.selection_set.selections)
    cost = _CostWalker(fragments, dict(variables or {}))
    return cost.selection(operation.selection_set)


def orders_page_size(max_cost: int = MAX_QUERY_COST) -> int:
    """The largest ``first`` for :data:`ORDERS_PAGE` whose requested cost fits ``max_cost``."""
    fixed = requested_cost(ORDERS_PAGE, {"first": 0, "query": ""})
    per_order = requested_cost(ORDERS_PAGE, {"first": 1, "query": ""}) - fixed
    return max(1, min(MAX_PAGE_SIZE, (max_cost - fixed) // per_order))


def _operation(ast: DocumentNode) -> OperationDefinitionNode:
    for definition in ast.definitions:
        if isinstance(definition, OperationDefinitionNode):
            return definition
    raise ValueError("the document has no operation")


class _CostWalker:
    """Walks a selection set applying Shopify's static cost rules."""

    def __init__(
        self, fragments: Mapping[str, FragmentDefinitionNode], variables: dict[str, Any]
    ) -> None:
        self.fragments = fragments
        self.variables = variables

    def selection(self, selection_set: SelectionSetNode | None) -> int:
        """Cost of the fields in ``selection_set`` (fragments add their fields)."""
        if selection_set is None:
            return 0
        total = 0
        for item in selection_set.selections:
            if isinstance(item, FieldNode):
                total += self.field(item)
            elif isinstance(item, InlineFragmentNode):
                total += self.selection(item.selection_set)
            elif isinstance(item, FragmentSpreadNode):
                total += self.selection(self.fragments[item.name.value].selection_set)
        return total

    def field(self, node: FieldNode) -> int:
        if node.selection_set is None:
            return 0  # scalar or enum
        size = self._page_size(node)
        if size is None:
            return 1 + self.selection(node.selection_set)
        return 2 + size * self._node_cost(node.selection_set)

    def _node_cost(self, connection: SelectionSetNode) -> int:
        # A connection's items are reached through `edges { node }` or `nodes`; `pageInfo`,
        # `cursor` and the edge wrapper are covered by the connection's fixed 2 points.
        cost = 0
        for item in connection.selections:
            if not isinstance(item, FieldNode) or item.selection_set is None:
                continue
            if item.name.value == "nodes":
                cost = max(cost, 1 + self.selection(item.selection_set))
            elif item.name.value == "edges":
                for edge_field in item.selection_set.selections:
                    if isinstance(edge_field, FieldNode) and edge_field.name.value == "node":
                        cost = max(cost, 1 + self.selection(edge_field.selection_set))
        return cost

    def _page_size(self, node: FieldNode) -> int | None:
        for argument in node.arguments or ():
            if argument.name.value not in ("first", "last"):
                continue
            if isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value)
            else:
                value = value_from_ast_untyped(argument.value, self.variables)
            return int(value or 0)
        return None

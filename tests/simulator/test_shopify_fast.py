"""The fast path answers exactly what graphql-core answers, and declines what it cannot do."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import execute_sync, parse

from storesync.simulator import Simulator
from storesync.simulator.shopify_cost import find_operation
from storesync.simulator.shopify_fast import fast_execute
from storesync.simulator.shopify_objects import QueryRoot, ShopContext
from storesync.simulator.shopify_schema import shopify_schema

from .helpers import ORDERS_QUERY

PLAIN = [
    (ORDERS_QUERY, {"q": "created_at:>='2025-10-01'", "first": 30, "after": None}),
    ("{ shop { name ianaTimezone currencyCode timezoneOffsetMinutes } }", {}),
    (
        "query($q: String) { a: orders(last: 7, query: $q, reverse: true, sortKey: UPDATED_AT) {"
        " pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
        " nodes { name updatedAt displayFinancialStatus cancelReason presentmentCurrencyCode"
        " netPaymentSet { presentmentMoney { amount currencyCode } } } } }",
        {"q": "financial_status:refunded"},
    ),
    ('{ ordersCount(query: "status:cancelled") { count precision } }', {}),
]
NOT_PLAIN = [
    "{ orders(first: 2) { nodes { ...F } } } fragment F on Order { id }",
    "{ orders(first: 2) { nodes { __typename id } } }",
    "{ orders(first: 2) { nodes { id id } } }",
    "{ orders(first: 2) { nodes { id @include(if: true) } } }",
]


def context(sim: Simulator) -> ShopContext:
    data = sim.data("ny-shop.myshopify.com")
    return ShopContext(data, sim.clock(), 250, None, sim.bulk, "http://simulator")


@pytest.mark.parametrize(("query", "variables"), PLAIN)
def test_same_answer_as_graphql_core(sim: Simulator, query: str, variables: dict[str, Any]) -> None:
    document = parse(query)
    operation = find_operation(document, None)
    assert operation is not None
    fast = fast_execute(shopify_schema(), document, operation, variables, QueryRoot(context(sim)))
    slow = execute_sync(
        shopify_schema(), document, root_value=QueryRoot(context(sim)), variable_values=variables
    )
    assert slow.errors is None
    assert fast == slow.data


@pytest.mark.parametrize("query", NOT_PLAIN)
def test_declines_what_needs_graphql_core(sim: Simulator, query: str) -> None:
    document = parse(query)
    operation = find_operation(document, None)
    assert operation is not None
    root = QueryRoot(context(sim))
    assert fast_execute(shopify_schema(), document, operation, {}, root) is None


def test_resolver_errors_fall_back(sim: Simulator) -> None:
    document = parse('{ orders(first: 1, after: "bad") { nodes { id } } }')
    operation = find_operation(document, None)
    assert operation is not None
    root = QueryRoot(context(sim))
    assert fast_execute(shopify_schema(), document, operation, {}, root) is None

"""Shopify contract: every GraphQL document the connector sends is valid for the pinned schema.

The simulator's schema (:mod:`storesync.simulator.shopify_schema`) is the slice of Shopify's
Admin API reference for ``STORESYNC_SHOPIFY_API_VERSION`` that storesync uses (checked field by
field; see docs/providers.md). These tests record every request the connector sends during
real syncs (paged, counted, bulk) and validate each document, its variables and the bulk
operation's inner query against that schema, so a field or argument Shopify does not have
fails here instead of in production. A deliberately wrong document must fail the same check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from graphql import (
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    get_variable_values,
    parse,
    validate,
)

from storesync.periods import Period
from storesync.providers import shopify_queries
from storesync.providers.shopify import ShopifyClient
from storesync.providers.shopify_bulk import BulkPolling
from storesync.providers.shopify_pacing import CostBucket
from storesync.settings import Settings
from storesync.simulator import Simulator
from storesync.simulator.shopify_schema import SCHEMA_VERSION, shopify_schema

from .helpers import NY, STORES, TEST_RETRY, sim_config, test_settings

NEW_YORK = ZoneInfo("America/New_York")
#: About 400 orders: several pages, so cursors (``after``) are sent too.
PERIOD = Period(date(2025, 6, 1), date(2025, 6, 14))


def contract_errors(query: str, variables: Mapping[str, Any] | None = None) -> list[str]:
    """Why Shopify would refuse this request, by the pinned schema (empty: it is valid).

    Checks the document's syntax and validity, that it holds exactly one operation, that the
    variables are exactly those declared and of their declared types, and, for
    ``bulkOperationRunQuery``, the same of the inner query (which takes no variables).
    """
    schema = shopify_schema()
    try:
        document = parse(query)
    except GraphQLError as error:
        return [f"syntax: {error.message}"]
    errors = [error.message for error in validate(schema, document)]
    if errors:
        return errors
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        return [f"expected one operation, found {len(operations)}"]
    operation = operations[0]
    variables = dict(variables or {})
    declared = {v.variable.name.value for v in operation.variable_definitions or ()}
    errors += [f"undeclared variable ${name}" for name in sorted(set(variables) - declared)]
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables)
    if isinstance(coerced, list):
        errors += [error.message for error in coerced]
    if operation.operation == OperationType.MUTATION:
        for selection in operation.selection_set.selections:
            if getattr(selection, "name", None) and selection.name.value == "bulkOperationRunQuery":  # type: ignore[attr-defined]
                errors += _bulk_inner_errors(variables.get("query"))
    return errors


def _bulk_inner_errors(inner: Any) -> list[str]:
    if not isinstance(inner, str):
        return ["bulkOperationRunQuery: the inner query must be sent as the $query string"]
    try:
        document = parse(inner)
    except GraphQLError as error:
        return [f"bulk inner query syntax: {error.message}"]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        return ["bulk inner query: must be a single query operation"]
    if operations[0].variable_definitions:
        return ["bulk inner query: bulk queries take no variables"]
    return [f"bulk inner query: {e.message}" for e in validate(shopify_schema(), document)]


def assert_contract(requests: list[dict[str, Any]]) -> None:
    """Fail with every problem found in the recorded GraphQL requests."""
    problems = []
    for request in requests:
        for error in contract_errors(request["query"], request.get("variables")):
            head = " ".join(request["query"].split())[:80]
            problems.append(f"{head}… {request.get('variables')}: {error}")
    assert not problems, "requests Shopify would refuse:\n" + "\n".join(problems)


def connector_documents() -> dict[str, str]:
    """Every complete GraphQL document defined in :mod:`shopify_queries` (by name)."""
    found = {}
    for name, value in vars(shopify_queries).items():
        if not name.isupper() or not isinstance(value, str):
            continue
        try:
            document = parse(value)
        except GraphQLError:
            continue  # a fragment of text (ORDER_FIELDS) or a template (BULK_ORDERS)
        if any(isinstance(d, OperationDefinitionNode) for d in document.definitions):
            found[name] = value
    return found


class Recording(httpx.AsyncBaseTransport):
    """Passes requests to the simulator, keeping each GraphQL body the connector sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.graphql: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/graphql.json"):
            self.graphql.append(json.loads(await request.aread()))
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def recorded(
    simulator: Simulator, tmp_path: Any
) -> Any:  # yields (client factory, recording)
    simulator.configure(sim_config().to_json())
    simulator.reset()
    recording = Recording(httpx.ASGITransport(app=simulator.app))
    settings = test_settings(tmp_path, "http://sim", shopify_bulk_threshold=100)
    store = next(s for s in STORES if s.shop_domain == NY)
    async with httpx.AsyncClient(transport=recording, base_url="http://sim") as http:

        def client(settings: Settings = settings) -> ShopifyClient:
            return ShopifyClient(
                http,
                settings,
                shop_domain=NY,
                access_token=store.shopify_token,
                bucket=CostBucket(),
                retry=TEST_RETRY,
                bulk_polling=BulkPolling(first=0.05, longest=0.1),
            )

        yield client, recording, settings


async def test_every_request_of_real_syncs_is_valid_for_the_pinned_schema(recorded: Any) -> None:
    client, recording, settings = recorded
    paged = await client().fetch_figures(PERIOD, NEW_YORK, mode="pages")
    bulk = await client().fetch_figures(PERIOD, NEW_YORK, mode="bulk")
    # "auto" counts first: above the (low) threshold it runs a bulk operation...
    auto_bulk = await client().fetch_figures(PERIOD, NEW_YORK, mode="auto")
    # ...and below it pages, with a first page sized from the count.
    roomy = settings.model_copy(update={"shopify_bulk_threshold": 100_000})
    auto_paged = await client(roomy).fetch_figures(PERIOD, NEW_YORK, mode="auto")
    one_day = Period(PERIOD.start, PERIOD.start)  # fewer orders than a page: a smaller `first`
    await client(roomy).fetch_figures(one_day, NEW_YORK, mode="auto")
    await client().count_orders(PERIOD, NEW_YORK, limit=5)
    await client().shop_currency()
    assert paged == bulk == auto_bulk == auto_paged  # the figures do not depend on the path

    sent = recording.graphql
    assert_contract(sent)
    # Every document the connector defines was exercised, in every variable combination it uses.
    documents = {r["query"] for r in sent}
    assert set(connector_documents().values()) <= documents
    pages = [r["variables"] for r in sent if r["query"] == shopify_queries.ORDERS_PAGE]
    assert any(v["after"] is None for v in pages) and any(v["after"] for v in pages)
    assert len({v["first"] for v in pages}) >= 2  # sized from the count, and full pages
    counts = [r["variables"] for r in sent if r["query"] == shopify_queries.ORDERS_COUNT]
    assert {v["limit"] for v in counts} == {settings.shopify_bulk_threshold + 1, 100_001, 5}
    runs = [r["variables"] for r in sent if r["query"] == shopify_queries.BULK_RUN]
    assert runs and all(not contract_errors(v["query"]) for v in runs)


def test_every_document_the_connector_defines_is_valid() -> None:
    documents = connector_documents()
    assert set(documents) == {
        "ORDERS_PAGE",
        "ORDERS_COUNT",
        "SHOP_CURRENCY",
        "BULK_RUN",
        "BULK_POLL",
    }
    for name, document in documents.items():
        assert contract_errors(document, _any_variables(document)) == [], name
    inner = shopify_queries.bulk_orders_query(
        shopify_queries.created_between(*PERIOD.utc_bounds(NEW_YORK))
    )
    assert contract_errors(inner) == []
    assert contract_errors(shopify_queries.BULK_RUN, {"query": inner}) == []


def _any_variables(document: str) -> dict[str, Any]:
    samples = {
        "first": 50,
        "after": None,
        "query": "created_at:>='2025-06-01T04:00:00Z'",
        "limit": 10,
        "id": "gid://shopify/BulkOperation/1",
    }
    if document == shopify_queries.BULK_RUN:  # its $query is the bulk operation's query
        samples["query"] = shopify_queries.bulk_orders_query(samples["query"])
    operation = next(
        d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)
    )
    return {
        v.variable.name.value: samples[v.variable.name.value]
        for v in operation.variable_definitions or ()
    }


PAGE_VARIABLES = {"first": 50, "after": None, "query": "created_at:>='2025-06-01T04:00:00Z'"}


@pytest.mark.parametrize(
    ("document", "variables", "expected"),
    [
        pytest.param(
            shopify_queries.ORDERS_PAGE.replace("test\n", "test\n      notAnOrderField\n"),
            PAGE_VARIABLES,
            "Cannot query field 'notAnOrderField' on type 'Order'",
            id="unknown field",
        ),
        pytest.param(
            shopify_queries.ORDERS_PAGE.replace(
                "sortKey: CREATED_AT", "sortKey: CREATED_AT, since: 1"
            ),
            PAGE_VARIABLES,
            "Unknown argument 'since'",
            id="unknown argument",
        ),
        pytest.param(
            shopify_queries.ORDERS_PAGE.replace("sortKey: CREATED_AT", "sortKey: CREATED"),
            PAGE_VARIABLES,
            "Value 'CREATED' does not exist in 'OrderSortKeys' enum",
            id="unknown enum value",
        ),
        pytest.param(
            shopify_queries.ORDERS_PAGE,
            {**PAGE_VARIABLES, "first": "50"},
            "Int cannot represent non-integer value",
            id="variable of the wrong type",
        ),
        pytest.param(
            shopify_queries.ORDERS_PAGE,
            {"first": 50, "after": None},
            "Variable '$query' has invalid value: Expected a value of non-null type 'String!'",
            id="missing required variable",
        ),
        pytest.param(
            shopify_queries.ORDERS_PAGE,
            {**PAGE_VARIABLES, "sortKey": "ID"},
            "undeclared variable $sortKey",
            id="undeclared variable",
        ),
        pytest.param(
            shopify_queries.BULK_RUN,
            {"query": shopify_queries.bulk_orders_query("test:false")},
            None,
            id="valid bulk (control)",
        ),
        pytest.param(
            shopify_queries.BULK_RUN,
            {"query": shopify_queries.bulk_orders_query("").replace("cancelledAt", "canceledAt")},
            "bulk inner query: Cannot query field 'canceledAt' on type 'Order'",
            id="bulk inner query with an unknown field",
        ),
    ],
)
def test_a_wrong_request_fails_the_contract(
    document: str, variables: dict[str, Any], expected: str | None
) -> None:
    if expected is None:
        assert_contract([{"query": document, "variables": variables}])
        return
    with pytest.raises(AssertionError, match="requests Shopify would refuse") as failure:
        assert_contract([{"query": document, "variables": variables}])
    assert expected in str(failure.value)


def test_the_schema_follows_the_pinned_api_version() -> None:
    assert Settings.model_fields["shopify_api_version"].default == SCHEMA_VERSION

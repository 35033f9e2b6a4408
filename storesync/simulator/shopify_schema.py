"""The slice of Shopify's Admin GraphQL schema the simulator serves.

Type, field, argument and enum names are Shopify's, so a query naming something Shopify does
not have fails validation here as it does there. Only what storesync reads is present; adding
a Shopify field means adding it here and in :mod:`storesync.simulator.shopify_objects`.

Custom scalars are resolved to their wire form already (``Decimal`` amounts and
``UnsignedInt64`` counts as strings, ``DateTime`` as ISO 8601 with ``Z``).

The slice follows Admin API version :data:`SCHEMA_VERSION`, the version storesync pins
(``STORESYNC_SHOPIFY_API_VERSION``); docs/providers.md records, field by field, what was checked
against Shopify's reference for that version and what could not be confirmed.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLSchema,
    build_schema,
)

#: The Admin API version this schema follows (and storesync's default version).
SCHEMA_VERSION = "2025-10"

CURRENCY_CODES = (
    "AED AUD BRL CAD CHF CLP CNY COP CZK DKK EUR GBP HKD HUF IDR ILS INR JPY KRW MXN MYR NOK "
    "NZD PEN PHP PLN RON SAR SEK SGD THB TRY TWD USD ZAR"
)

SDL = f"""
schema {{ query: QueryRoot mutation: Mutation }}

scalar DateTime
scalar Decimal
scalar UnsignedInt64
scalar URL

interface Node {{ id: ID! }}

enum CurrencyCode {{ {CURRENCY_CODES} }}
enum OrderSortKeys {{
  CREATED_AT CURRENT_TOTAL_PRICE CUSTOMER_NAME DESTINATION FINANCIAL_STATUS
  FULFILLMENT_STATUS ID ORDER_NUMBER PO_NUMBER PROCESSED_AT RELEVANCE TOTAL_ITEMS_QUANTITY
  TOTAL_PRICE UPDATED_AT
}}
enum OrderDisplayFinancialStatus {{
  AUTHORIZED EXPIRED PAID PARTIALLY_PAID PARTIALLY_REFUNDED PENDING REFUNDED VOIDED
}}
enum OrderCancelReason {{ CUSTOMER DECLINED FRAUD INVENTORY OTHER STAFF }}
enum BulkOperationStatus {{ CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }}
enum BulkOperationErrorCode {{ ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }}
enum BulkOperationType {{ MUTATION QUERY }}
enum BulkOperationUserErrorCode {{ INVALID OPERATION_IN_PROGRESS }}
enum CountPrecision {{ AT_LEAST EXACT }}

type MoneyV2 {{
  amount: Decimal!
  currencyCode: CurrencyCode!
}}

type MoneyBag {{
  presentmentMoney: MoneyV2!
  shopMoney: MoneyV2!
}}

type Customer implements Node {{
  id: ID!
  legacyResourceId: UnsignedInt64!
  numberOfOrders: UnsignedInt64!
  amountSpent: MoneyV2!
}}

type CustomerJourneySummary {{
  customerOrderIndex: Int
  daysToConversion: Int
  ready: Boolean!
}}

type Order implements Node {{
  id: ID!
  legacyResourceId: UnsignedInt64!
  name: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  processedAt: DateTime!
  cancelledAt: DateTime
  cancelReason: OrderCancelReason
  closed: Boolean!
  test: Boolean!
  displayFinancialStatus: OrderDisplayFinancialStatus
  currencyCode: CurrencyCode!
  presentmentCurrencyCode: CurrencyCode!
  totalPriceSet: MoneyBag!
  currentTotalPriceSet: MoneyBag!
  subtotalPriceSet: MoneyBag
  currentSubtotalPriceSet: MoneyBag!
  totalDiscountsSet: MoneyBag
  currentTotalDiscountsSet: MoneyBag!
  totalRefundedSet: MoneyBag!
  netPaymentSet: MoneyBag!
  totalTaxSet: MoneyBag
  currentTotalTaxSet: MoneyBag!
  totalShippingPriceSet: MoneyBag!
  customer: Customer
  customerJourneySummary: CustomerJourneySummary
}}

type PageInfo {{
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}}

type OrderEdge {{
  cursor: String!
  node: Order!
}}

type OrderConnection {{
  edges: [OrderEdge!]!
  nodes: [Order!]!
  pageInfo: PageInfo!
}}

type Count {{
  count: Int!
  precision: CountPrecision!
}}

type Shop implements Node {{
  id: ID!
  name: String!
  myshopifyDomain: String!
  currencyCode: CurrencyCode!
  ianaTimezone: String!
  timezoneAbbreviation: String!
  timezoneOffsetMinutes: Int!
}}

type BulkOperation implements Node {{
  id: ID!
  status: BulkOperationStatus!
  errorCode: BulkOperationErrorCode
  objectCount: UnsignedInt64!
  rootObjectCount: UnsignedInt64!
  fileSize: UnsignedInt64
  url: URL
  partialDataUrl: URL
  createdAt: DateTime!
  completedAt: DateTime
  query: String!
  type: BulkOperationType!
}}

type BulkOperationUserError {{
  code: BulkOperationUserErrorCode
  field: [String!]
  message: String!
}}

type UserError {{
  field: [String!]
  message: String!
}}

type BulkOperationRunQueryPayload {{
  bulkOperation: BulkOperation
  userErrors: [BulkOperationUserError!]!
}}

type BulkOperationCancelPayload {{
  bulkOperation: BulkOperation
  userErrors: [UserError!]!
}}

type QueryRoot {{
  orders(
    first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
    sortKey: OrderSortKeys = PROCESSED_AT, query: String, savedSearchId: ID
  ): OrderConnection!
  order(id: ID!): Order
  ordersCount(query: String, savedSearchId: ID, limit: Int = 10000): Count
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  shop: Shop!
  currentBulkOperation(type: BulkOperationType = QUERY): BulkOperation
}}

type Mutation {{
  bulkOperationRunQuery(query: String!, groupObjects: Boolean! = true): BulkOperationRunQueryPayload
  bulkOperationCancel(id: ID!): BulkOperationCancelPayload
}}
"""


def _node_type(value: Any, _info: Any, _abstract: Any) -> str | None:
    if isinstance(value, dict):
        name = value.get("__typename")
        return name if isinstance(name, str) else None
    name = getattr(value, "graphql_type", None)
    return name if isinstance(name, str) else None


@functools.cache
def shopify_schema() -> GraphQLSchema:
    """The schema (built once per process; it is immutable)."""
    schema = build_schema(SDL)
    node = schema.get_type("Node")
    assert isinstance(node, GraphQLInterfaceType)
    node.resolve_type = _node_type
    return schema


_UNDEFINED_FIELD = re.compile(r"Cannot query field '(\w+)' on type '(\w+)'\.")
_UNKNOWN_ARGUMENT = re.compile(r"Unknown argument '(\w+)' on field '(\w+)\.(\w+)'\.")


def shopify_error(error: GraphQLError) -> dict[str, Any]:
    """A GraphQL error in Shopify's words where they differ from graphql-core's.

    Shopify says ``Field 'foo' doesn't exist on type 'Order'`` with the code
    ``undefinedField``; clients that match on that text or code see the same here.
    """
    out: dict[str, Any] = dict(error.formatted)
    if match := _UNDEFINED_FIELD.match(error.message):
        field, type_name = match.groups()
        out["message"] = f"Field '{field}' doesn't exist on type '{type_name}'"
        out["extensions"] = {"code": "undefinedField", "typeName": type_name, "fieldName": field}
    elif match := _UNKNOWN_ARGUMENT.match(error.message):
        argument, type_name, field = match.groups()
        out["message"] = f"Field '{field}' doesn't accept argument '{argument}'"
        out["extensions"] = {
            "code": "argumentNotAccepted",
            "name": field,
            "typeName": "Field",
            "argumentName": argument,
        }
    return out

"""Shopify's query cost, computed from the query's syntax tree.

The rules (Shopify's own help page): scalar and enum fields cost 0, an object field 1, a
connection ``2 + first × (cost of one node's selection)`` where a node's selection costs 1
for the node plus its own object and connection fields (nested connections multiply), and a
mutation 10. The *requested* cost uses ``first``/``last``; the *actual* cost is the same
computation over the response, counting the nodes really returned (each returned node
costs what its selection requested). ``edges``, ``node``, ``nodes``, ``cursor`` and
``pageInfo`` are part of the connection's 2 points.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast,
)

MUTATION_COST = 10
_MISSING: Any = object()
_Parent = GraphQLObjectType | GraphQLInterfaceType


def find_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation to run: the named one, or the only one."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


class CostCalculator:
    """Requested and actual cost of one operation."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.variables = variables or {}
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._static_costs: dict[int, int] = {}
        self._nests: dict[int, bool] = {}

    @property
    def is_mutation(self) -> bool:
        return self.operation.operation == OperationType.MUTATION

    def requested(self) -> int:
        """The cost before execution, from ``first``/``last``."""
        if self.is_mutation:
            return MUTATION_COST
        root = self.schema.query_type
        assert root is not None
        return self._selection(root, self.operation.selection_set, _MISSING)

    def actual(self, data: dict[str, Any] | None) -> int:
        """The cost of what was returned (nodes actually present in ``data``)."""
        if self.is_mutation:
            return MUTATION_COST
        root = self.schema.query_type
        assert root is not None
        return self._selection(root, self.operation.selection_set, data or {})

    def _parts(
        self, parent: _Parent, selection_set: SelectionSetNode | None
    ) -> list[tuple[_Parent, FieldNode]]:
        """The fields of a selection set with their parent types, fragments flattened."""
        out: list[tuple[_Parent, FieldNode]] = []
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                out.append((parent, sel))
                continue
            if isinstance(sel, InlineFragmentNode):
                condition, inner = sel.type_condition, sel.selection_set
            else:
                assert isinstance(sel, FragmentSpreadNode)
                fragment = self.fragments.get(sel.name.value)
                if fragment is None:
                    continue
                condition, inner = fragment.type_condition, fragment.selection_set
            target = self.schema.get_type(condition.name.value) if condition else parent
            if isinstance(target, GraphQLObjectType | GraphQLInterfaceType):
                out.extend(self._parts(target, inner))
        return out

    def _selection(self, parent: _Parent, selection_set: SelectionSetNode | None, data: Any) -> int:
        return sum(self._field(p, node, data) for p, node in self._parts(parent, selection_set))

    def _static(self, parent: _Parent, selection_set: SelectionSetNode | None) -> int:
        """The requested cost of a selection (memoised: pages repeat it for every node)."""
        key = id(selection_set)
        if key not in self._static_costs:
            self._static_costs[key] = self._selection(parent, selection_set, _MISSING)
        return self._static_costs[key]

    def _nested(self, parent: _Parent, selection_set: SelectionSetNode | None) -> bool:
        """Whether a selection contains a connection (then actual costs need the data)."""
        key = id(selection_set)
        if key not in self._nests:
            found = False
            for p, node in self._parts(parent, selection_set):
                definition = p.fields.get(node.name.value)
                named = get_named_type(definition.type) if definition else None
                if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
                    found = named.name.endswith("Connection") or self._nested(
                        named, node.selection_set
                    )
                if found:
                    break
            self._nests[key] = found
        return self._nests[key]

    def _field(self, parent: _Parent, node: FieldNode, data: Any) -> int:
        name = node.name.value
        definition = parent.fields.get(name)
        if definition is None:
            return 0
        named = get_named_type(definition.type)
        if is_leaf_type(named) or not isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        value = _MISSING
        if data is not _MISSING:
            key = node.alias.value if node.alias else name
            value = data.get(key) if isinstance(data, dict) else None
            if value is None:
                return 0  # nothing returned, nothing charged
        if named.name.endswith("Connection"):
            return self._connection(named, node, value)
        items = value if isinstance(value, list) else [value]
        if value is _MISSING or not self._nested(named, node.selection_set):
            return sum(1 + self._static(named, node.selection_set) for item in items if item)
        return sum(1 + self._selection(named, node.selection_set, item) for item in items if item)

    def _connection(self, connection: _Parent, node: FieldNode, data: Any) -> int:
        node_type = get_named_type(connection.fields["nodes"].type)
        assert isinstance(node_type, GraphQLObjectType | GraphQLInterfaceType)
        # (selection of one node, path to the list in the response)
        selections: list[tuple[SelectionSetNode | None, str, str | None]] = []
        for sel in node.selection_set.selections if node.selection_set else ():
            if not isinstance(sel, FieldNode):
                continue
            key = sel.alias.value if sel.alias else sel.name.value
            if sel.name.value == "nodes":
                selections.append((sel.selection_set, key, None))
            elif sel.name.value == "edges" and sel.selection_set:
                for inner in sel.selection_set.selections:
                    if isinstance(inner, FieldNode) and inner.name.value == "node":
                        inner_key = inner.alias.value if inner.alias else "node"
                        selections.append((inner.selection_set, key, inner_key))
        if data is _MISSING:
            count = self._page_size(node)
            return 2 + count * sum(1 + self._static(node_type, s) for s, _, _ in selections)
        total = 2
        for selection, list_key, node_key in selections:
            nodes = [
                item.get(node_key) if node_key and isinstance(item, dict) else item
                for item in data.get(list_key) or ()
            ]
            nodes = [n for n in nodes if n is not None]
            if self._nested(node_type, selection):
                total += sum(1 + self._selection(node_type, selection, n) for n in nodes)
            else:
                total += len(nodes) * (1 + self._static(node_type, selection))
        return total

    def _page_size(self, node: FieldNode) -> int:
        for argument in node.arguments or ():
            if argument.name.value in ("first", "last"):
                value = value_from_ast(argument.value, GraphQLInt, self.variables)
                if isinstance(value, int):
                    return max(0, value)
        return 0

"""Klaviyo's ``filter`` parameter: ``equals(integration.name,'Shopify')``, ``and(…)``, ``any(…)``.

Operators: ``equals``, ``any``, ``contains``, ``contains-any``, ``starts-with``, ``ends-with``,
``greater-than``, ``greater-or-equal``, ``less-than``, ``less-or-equal``, ``and``, ``or``,
``not``; several top-level expressions separated by commas are combined with ``and``. Each
endpoint names the fields it accepts and, optionally, the operators allowed on each; anything
else is a :class:`FilterError` (answered with 400 ``invalid``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<punct>[(),\[\]])|(?P<word>[^\s(),\[\]'"]+))"""
)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "greater-than": operator.gt,
    "greater-or-equal": operator.ge,
    "less-than": operator.lt,
    "less-or-equal": operator.le,
}
Item = dict[str, Any]
Predicate = Callable[[Item], bool]


class FilterError(ValueError):
    """The filter cannot be parsed or names something the endpoint does not filter on."""


class _Word(str):
    """A bare (unquoted) word: a field path or a literal such as true, 12 or a date."""


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterError(f"Invalid filter provided: could not parse {text[pos:]!r}")
        pos = match.end()
        if match.group("str") is not None:
            out.append(match.group("str"))
        elif match.group("punct") is not None:
            out.append(match.group("punct"))
        else:
            out.append(_Word(match.group("word")))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise FilterError(f"Invalid filter provided: expected {expected or 'more input'}")
        self.pos += 1
        return token

    def expressions(self) -> list[Any]:
        items = [self.argument()]
        while self.peek() == ",":
            self.take(",")
            items.append(self.argument())
        return items

    def argument(self) -> Any:
        token = self.take()
        if token == "[":  # noqa: S105 - a bracket, not a password
            items = [] if self.peek() == "]" else self.expressions()
            self.take("]")
            return items
        if isinstance(token, _Word):
            if self.peek() == "(":
                self.take("(")
                args = [] if self.peek() == ")" else self.expressions()
                self.take(")")
                return (str(token), args)
            return token
        if token[0] in "'\"":
            return token[1:-1].replace("\\" + token[0], token[0])
        raise FilterError(f"Invalid filter provided: unexpected {token!r}")


def parse_filter(text: str) -> list[tuple[str, list[Any]]]:
    """The top-level calls of a filter string."""
    parser = _Parser(text)
    calls = parser.expressions()
    if parser.peek() is not None or not all(isinstance(c, tuple) for c in calls):
        raise FilterError("Invalid filter provided: expected operator(field, value) expressions")
    return calls


def _literal(value: Any) -> Any:
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if not isinstance(value, _Word):
        return value
    if value in ("true", "false"):
        return value == "true"
    if value == "null":
        return None
    for number in (int, float):
        try:
            return number(value)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(f"Invalid filter provided: {value!r} is not a value") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def compile_filter(
    text: str,
    fields: dict[str, Callable[[Item], Any]],
    resource: str,
    operators: Mapping[str, frozenset[str]] | None = None,
) -> Predicate:
    """A predicate over items for ``text``, using ``fields`` to read each field; ``operators``
    (when given) names the operators allowed on each field."""
    checks = [_compile(call, fields, resource, operators) for call in parse_filter(text)]
    return lambda item: all(check(item) for check in checks)


def _compile(
    call: Any,
    fields: dict[str, Callable[[Item], Any]],
    resource: str,
    operators: Mapping[str, frozenset[str]] | None,
) -> Predicate:
    if not isinstance(call, tuple):
        raise FilterError("Invalid filter provided: expected operator(field, value)")
    op, args = call
    if op in ("and", "or"):
        parts = [_compile(a, fields, resource, operators) for a in args]
        combine = all if op == "and" else any
        return lambda item: combine(p(item) for p in parts)
    if op == "not" and len(args) == 1:
        inner = _compile(args[0], fields, resource, operators)
        return lambda item: not inner(item)
    if len(args) != 2 or not isinstance(args[0], _Word):
        raise FilterError(f"Invalid filter provided: {op} takes a field and a value")
    name, value = str(args[0]), _literal(args[1])
    if name not in fields:
        raise FilterError(f"'{name}' is not a valid field for the resource '{resource}'.")
    if operators is not None and op not in operators.get(name, frozenset()):
        raise FilterError(
            f"Invalid filter provided: operator '{op}' is not supported for '{name}'."
        )
    read = fields[name]
    if op == "equals":
        return lambda item: read(item) == value
    if op == "any" and isinstance(value, list):
        return lambda item: read(item) in value
    if op == "contains":
        return lambda item: str(value) in str(read(item) or "")
    if op == "starts-with":
        return lambda item: str(read(item) or "").startswith(str(value))
    if op == "ends-with":
        return lambda item: str(read(item) or "").endswith(str(value))
    if op == "contains-any" and isinstance(value, list):
        return lambda item: any(str(v) in str(read(item) or "") for v in value)
    if op in _COMPARE:
        compare = _COMPARE[op]
        return lambda item: read(item) is not None and compare(read(item), value)
    raise FilterError(f"Invalid filter provided: operator '{op}' is not supported for '{name}'.")

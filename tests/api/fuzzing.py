"""What the HTTP fuzz tests send: hypothesis strategies for Shopify webhook payloads and for
the web pages' forms and queries, and a signed-in web client.

JSON is generated as text, not through ``json.dumps``, so that it can hold what a real
sender may: numbers of thousands of digits (Python refuses to print those), ``NaN``, deep
nesting, any unicode.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from hypothesis import strategies as st

INT64_MAX = 2**63 - 1


def text(max_size: int) -> st.SearchStrategy[str]:
    """Any unicode a client can encode (no lone surrogates)."""
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


# -- JSON as text ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text put in as it is (a number literal, a deep nest)."""

    text: str


def dump(value: Any) -> str:
    """JSON text of ``value``, with :class:`Raw` parts verbatim."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


numbers = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**20]),
    st.integers(1, 6000).map(lambda n: Raw("9" * n)),  # past 4,300 digits Python refuses
    st.sampled_from(["1e400", "-1e400", "1e-400", "0.000000000000000000001", "-0"]).map(Raw),
)


def nest(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


#: Instants at the ends of the calendar, where converting to a time zone leaves its range.
edge_instants = st.builds(
    lambda moment, offset: moment.isoformat() + offset,
    st.datetimes(max_value=datetime(1, 1, 2)) | st.datetimes(min_value=datetime(9999, 12, 30)),
    st.sampled_from(["", "Z", "+14:00", "-12:00", "+00:00", "-00:01"]),
)

odd_instants = st.one_of(
    edge_instants,
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["2025-02-30T10:00:00Z", "2025-01-01T24:00:00Z", "2025-13-01", "", "now"]),
    st.text(max_size=40),
)

json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=30) | odd_instants,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)

order_fields = st.fixed_dictionaries(
    {},
    optional={
        "id": numbers,
        "created_at": st.one_of(edge_instants, odd_instants, json_values),
        "processed_at": odd_instants,
        "updated_at": odd_instants,
        "transactions": st.lists(
            st.fixed_dictionaries({}, optional={"processed_at": odd_instants, "kind": st.text()})
            | json_values,
            max_size=3,
        )
        | json_values,
        "order_status_url": st.sampled_from(
            ["https://loja-lisboa.myshopify.com/1/orders/a", "https://[x", "mailto:x"]
        )
        | st.text(max_size=30),
        "shop_domain": st.text(max_size=30),
        "deep": st.integers(1, 5000).map(nest),
        "extra": json_values,
    },
)


@st.composite
def webhook_bodies(draw: st.DrawFn) -> bytes:
    """A webhook body: mostly order-shaped objects of odd content, sometimes anything."""
    kind = draw(st.sampled_from(["order", "order", "order", "any", "deep", "broken"]))
    if kind == "order":
        return dump(draw(order_fields)).encode()
    if kind == "any":
        return dump(draw(json_values)).encode()
    if kind == "deep":
        deep = nest(draw(st.integers(500, 200_000))).text
        return ('{"id": 1, "created_at": ' + deep + "}").encode()
    return draw(st.binary(max_size=200))


#: Header values: what HTTP lets through (visible ASCII, inner spaces; no control characters,
#: no whitespace at either end).
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=260).map(
    str.strip
)


# -- the web pages -----------------------------------------------------------------------------


ids = st.one_of(
    st.integers(-5, 50),
    st.integers(-(2**63), INT64_MAX),
    st.sampled_from([INT64_MAX, INT64_MAX + 1, 2**64, -(2**63) - 1, 10**30]),
)

date_texts = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01", "9999-12-31", "1969-12-31", "2025-02-30", "", "yesterday"]),
    text(20),
)

period_names = st.one_of(
    st.sampled_from(["", "today", "last_7_days", "last_30_days", "custom", "nonsense"]),
    text(20),
)

form_text = text(300)


@st.composite
def period_fields(draw: st.DrawFn) -> dict[str, str]:
    """The picker's fields: loose ones, or a short custom period anywhere in the calendar
    (year 1 and 9999 included), as a person picking two dates would send."""
    if draw(st.booleans()):
        return draw(
            st.fixed_dictionaries(
                {}, optional={"period": period_names, "start": date_texts, "end": date_texts}
            )
        )
    edge = st.sampled_from([date.min, date(1969, 12, 25), date(9998, 12, 25), date.max])
    start = draw(st.one_of(edge, edge, st.dates()))
    end = start + timedelta(days=min(draw(st.integers(0, 10)), (date.max - start).days))
    return {"period": "custom", "start": start.isoformat(), "end": end.isoformat()}


@dataclass
class WebSession:
    """An ``httpx`` client signed in to the web pages, and its CSRF token."""

    client: httpx.Client
    csrf: str


CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def sign_in(url: str, token: str) -> WebSession:
    """Sign in through the form, as a browser would: the sign-in page's CSRF token, the
    token posted, then a page's CSRF token for the signed-in session. The caller closes
    ``client``."""
    client = httpx.Client(base_url=url, timeout=30)
    form = client.get("/sign-in")
    found = CSRF_FIELD.search(form.text)
    assert found, form.text
    signed = client.post("/sign-in", data={"token": token, "csrf": found.group(1), "next": "/"})
    assert signed.status_code == 303, signed.text
    page = client.get("/stores")
    assert page.status_code == 200, page.text
    csrf = CSRF_FIELD.search(page.text)
    assert csrf, page.text
    return WebSession(client, csrf.group(1))

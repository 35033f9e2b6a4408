"""What a store's settings may hold: the one set of rules every entry point applies.

The HTTP API (its request models), the web settings form and ``storesync stores add`` all end in
:class:`~storesync.stores.StoreDirectory`, which checks every value here before writing
anything; the API's request models use the same functions so that the OpenAPI document and the
422 answers say the same. The Shopify client applies :func:`shop_domain` again where it builds
the URL that receives the access token, so no other path can reach another host.

Every function returns the normalised value or raises :class:`InputError` with a sentence the
person who typed the value can act on.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable

from storesync.errors import InputError

NAME_MAX = 200
SECRET_MAX = 1000
DOMAIN_MAX = 255
TIMEZONE_MAX = 64

#: Shopify's own rule for a shop's permanent domain (OAuth's ``shop`` parameter), lower case.
SHOPIFY_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
#: An extra host an operator may allow (a simulator): a plain DNS name, or ``*.`` + one.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")
_HTTPS = "https://"
#: Zone names that are not places: the machine's own clock, a placeholder, leap-second tables.
_NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})
_NOT_PLACE_PREFIXES = ("posix/", "right/")
CURRENCY = re.compile(r"[A-Za-z]{3}")


def allowed_hosts(setting: str | Iterable[str]) -> tuple[str, ...]:
    """The extra shop hosts of ``STORESYNC_SHOPIFY_ALLOWED_HOSTS`` (comma-separated), checked."""
    items = setting.split(",") if isinstance(setting, str) else list(setting)
    hosts = []
    for item in items:
        host = item.strip().lower()
        if not host:
            continue
        if not _HOST.fullmatch(host) or len(host) > DOMAIN_MAX:
            raise InputError(
                f"STORESYNC_SHOPIFY_ALLOWED_HOSTS: {item.strip()!r} is not a host name "
                "(use names such as shop.sim.test or *.sim.test, without scheme or port)"
            )
        hosts.append(host)
    return tuple(dict.fromkeys(hosts))


def _allowed(domain: str, extra_hosts: Iterable[str]) -> bool:
    for host in extra_hosts:
        if host.startswith("*."):
            if domain.endswith(host[1:]) and len(domain) > len(host) - 1:
                return True
        elif domain == host:
            return True
    return False


def shop_domain(value: str, *, extra_hosts: Iterable[str] = ()) -> str:
    """``https://Acme.myshopify.com`` → ``acme.myshopify.com``; a bare ``acme`` gets the suffix.

    Only a shop's ``name.myshopify.com`` domain is accepted: no port, path, query, user, other
    scheme, IP address or look-alike (``acme.myshopify.com.evil.example``). An ``https://``
    prefix (and one trailing ``/``, as copied from a browser) is dropped only when nothing else
    follows the host. ``extra_hosts`` (from ``STORESYNC_SHOPIFY_ALLOWED_HOSTS``) admits other
    host names, for a simulator.
    """
    text = value.strip().lower()
    if text.startswith(_HTTPS):
        text = text[len(_HTTPS) :]
    if text.endswith("/"):
        text = text[:-1]
    if text and "." not in text and SHOPIFY_DOMAIN.fullmatch(f"{text}.myshopify.com"):
        text = f"{text}.myshopify.com"
    label = text.split(".", 1)[0]
    if len(text) <= DOMAIN_MAX and len(label) <= 63:
        if SHOPIFY_DOMAIN.fullmatch(text):
            return text
        if _HOST.fullmatch(text) and not text.startswith("*") and _allowed(text, extra_hosts):
            return text
    shown = value.strip()[:80]
    raise InputError(
        f"{shown!r} is not a Shopify shop domain: use the shop's name.myshopify.com "
        "domain (for example acme.myshopify.com), without port or path"
    )


def store_name(value: str) -> str:
    """A store's name: not blank, at most 200 characters, no control characters."""
    name = value.strip()
    if not name:
        raise InputError("a store needs a name")
    if len(name) > NAME_MAX:
        raise InputError(f"a store's name has at most {NAME_MAX} characters (this one {len(name)})")
    if _has_controls(name):
        raise InputError("a store's name must not contain control characters (such as NUL)")
    return name


def secret(value: str, what: str) -> str:
    """A credential: not blank, at most 1000 characters, no control characters or spaces."""
    text = value.strip()
    if not text:
        raise InputError(f"the {what} must not be blank")
    if len(text) > SECRET_MAX:
        raise InputError(f"the {what} is longer than {SECRET_MAX} characters")
    if _has_controls(text) or any(c.isspace() for c in text):
        raise InputError(f"the {what} must not contain spaces or control characters")
    return text


def currency(value: str) -> str:
    """An ISO 4217 code such as USD (any case in, upper case out)."""
    text = value.strip()
    if not CURRENCY.fullmatch(text):
        raise InputError(
            f"{text[:40]!r} is not a currency code: use the three-letter ISO 4217 code "
            "(for example USD or EUR)"
        )
    return text.upper()


def timezone(value: str) -> str:
    """An IANA time zone of a place (``Europe/Lisbon``, ``UTC``), not the machine's clock."""
    name = value.strip()
    if (
        name in _iana_zones()
        and name not in _NOT_PLACES
        and not name.startswith(_NOT_PLACE_PREFIXES)
    ):
        return name
    raise InputError(f"unknown time zone {name[:64]!r} (use an IANA name such as Europe/Lisbon)")


@functools.cache
def _iana_zones() -> frozenset[str]:
    # available_timezones() walks the zone directories: once per process is enough.
    return frozenset(zoneinfo.available_timezones())


def _has_controls(text: str) -> bool:
    # Cc: C0/C1 controls (NUL, newline, escape…); Cs: lone surrogates, which neither database
    # can store.
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in text)

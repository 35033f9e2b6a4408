"""Store input rules (storesync.store_rules) and the store directory that applies them: shop
domains confined to Shopify, one store per shop across accounts (both databases), names,
credentials, currencies and time zones checked before anything is written."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from storesync import store_rules
from storesync.accounts import ACCOUNTS
from storesync.errors import ConflictError, InputError
from storesync.settings import Settings
from storesync.storage import Database, migrate
from storesync.storage.crypto import SecretBox
from storesync.stores import STORES, StoreDirectory

ACCEPTED = {
    "acme.myshopify.com": "acme.myshopify.com",
    "  Acme-Outdoors.MyShopify.com ": "acme-outdoors.myshopify.com",
    "https://acme.myshopify.com": "acme.myshopify.com",
    "HTTPS://ACME.MYSHOPIFY.COM/": "acme.myshopify.com",  # as copied from a browser
    "acme": "acme.myshopify.com",  # a bare shop name
    "store-0001.myshopify.com": "store-0001.myshopify.com",
}

REFUSED = [
    "evil.example.com",
    "127.0.0.1",
    "169.254.169.254",
    "[::1]",
    "acme.myshopify.com.evil.example.com",
    "acme.myshopify.com.",
    "evilmyshopify.com",
    "acme.evil.myshopify.com",  # a sub-subdomain is not a shop
    "-acme.myshopify.com",
    "https://127.0.0.1/some/path",
    "https://acme.myshopify.com/admin",  # a path is not dropped silently
    "https://acme.myshopify.com//",
    "https://acme.myshopify.com?x=1",
    "https://acme.myshopify.com#x",
    "acme.myshopify.com:443",
    "https://acme.myshopify.com:8443",
    "http://acme.myshopify.com",  # only an https:// prefix is accepted
    "ftp://acme.myshopify.com",
    "//acme.myshopify.com",
    "user@acme.myshopify.com",
    "https://user:pw@acme.myshopify.com",
    "acme.myshopify.com\nevil.example.com",
    "acme\x00.myshopify.com",
    "acmé.myshopify.com",
    "аcme.myshopify.com",  # a Cyrillic а
    "acme.myshopify.com/evil.example.com",
    "a" * 64 + ".myshopify.com",  # a DNS label has at most 63 characters
    "",
    "   ",
]


@pytest.mark.parametrize(("typed", "stored"), ACCEPTED.items())
def test_shop_domains_are_normalised(typed: str, stored: str) -> None:
    assert store_rules.shop_domain(typed) == stored


@pytest.mark.parametrize("typed", REFUSED)
def test_anything_but_a_shopify_shop_domain_is_refused(typed: str) -> None:
    with pytest.raises(InputError, match="is not a Shopify shop domain"):
        store_rules.shop_domain(typed)


def test_extra_hosts_are_admitted_only_when_allowed_and_only_as_host_names() -> None:
    hosts = store_rules.allowed_hosts("shop.sim.test, *.local.test")
    assert hosts == ("shop.sim.test", "*.local.test")
    assert store_rules.shop_domain("Shop.Sim.Test", extra_hosts=hosts) == "shop.sim.test"
    assert store_rules.shop_domain("a.local.test", extra_hosts=hosts) == "a.local.test"
    for typed in ("shop.sim.test", "a.local.test"):
        with pytest.raises(InputError):
            store_rules.shop_domain(typed)  # not without the setting
    for typed in (
        "local.test",
        "x/a.local.test",
        "a.local.test:80",
        "other.sim.test",
        "*.local.test",
        "shop.sim.test.evil.example",
    ):
        with pytest.raises(InputError):
            store_rules.shop_domain(typed, extra_hosts=hosts)
    with pytest.raises(ValueError, match="STORESYNC_SHOPIFY_ALLOWED_HOSTS"):
        Settings(shopify_allowed_hosts="http://sim.test:8080")
    assert Settings(shopify_allowed_hosts=" A.test ,").shop_extra_hosts == ("a.test",)
    assert Settings().shop_extra_hosts == ()


@pytest.mark.parametrize(
    "name", ["Factory", "localtime", "right/UTC", "posix/Europe/Lisbon", "posixrules", "Mars/Base"]
)
def test_time_zones_must_be_places(name: str) -> None:
    with pytest.raises(InputError, match="unknown time zone"):
        store_rules.timezone(name)


def test_field_rules() -> None:
    assert store_rules.timezone("Europe/Lisbon") == "Europe/Lisbon"
    assert store_rules.timezone("UTC") == "UTC"
    assert store_rules.currency("usd") == "USD"
    for bad in ("usdollar", "US", "U$D", "", "€€€"):
        with pytest.raises(InputError, match="ISO 4217"):
            store_rules.currency(bad)
    assert store_rules.store_name("  Acme  ") == "Acme"
    for bad, reason in [
        ("", "needs a name"),
        ("   ", "needs a name"),
        ("x" * 201, "at most 200"),
        ("Acme\x00", "control characters"),
        ("Ac\nme", "control characters"),
        ("Ac\ud800me", "control characters"),
    ]:
        with pytest.raises(InputError, match=reason):
            store_rules.store_name(bad)
    assert store_rules.secret(" shpat_x ", "Shopify access token") == "shpat_x"
    for bad in ("", "   ", "shpat x", "shpat\x00x", "x" * 1001):
        with pytest.raises(InputError, match="Shopify access token"):
            store_rules.secret(bad, "Shopify access token")


def _directory(database: Database, settings: Settings) -> StoreDirectory:
    return StoreDirectory(database, SecretBox.from_settings(settings))


async def _add(directory: StoreDirectory, domain: str, account: str, **kw: str) -> int:
    values = {
        "name": "Acme",
        "shopify_domain": domain,
        "shopify_token": "shpat_a",
        "klaviyo_key": None,
        "timezone": "Europe/Lisbon",
        "account": account,
        **kw,
    }
    return (await directory.add(**values)).id  # type: ignore[arg-type]


async def _counts(database: Database) -> tuple[int, int]:
    async with database.read() as conn:
        stores = await conn.scalar(select(func.count()).select_from(STORES))
        accounts = await conn.scalar(select(func.count()).select_from(ACCOUNTS))
    return int(stores or 0), int(accounts or 0)


async def test_a_shop_belongs_to_one_store_across_accounts(
    database: Database, settings: Settings
) -> None:
    await migrate(database)
    directory = _directory(database, settings)
    await _add(directory, "acme.myshopify.com", "agency")
    before = await _counts(database)
    with pytest.raises(ConflictError, match="already exists in another account") as taken:
        await _add(directory, "https://ACME.myshopify.com", "rival")
    assert "agency" not in str(taken.value)  # who holds it is not told
    with pytest.raises(ConflictError, match="account 'agency' already has a store"):
        await _add(directory, "acme", "agency")
    assert await _counts(database) == before  # the rival account was not created either

    # Two accounts racing for the same new shop: the database's unique index decides.
    results = await asyncio.gather(
        *(_add(directory, "race.myshopify.com", f"racer-{n}") for n in range(4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, int) for r in results) == 1
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, int))


async def test_the_directory_applies_every_rule_before_writing(
    database: Database, settings: Settings
) -> None:
    await migrate(database)
    directory = _directory(database, settings)
    store = await _add(directory, "acme.myshopify.com", "agency", currency="eur")
    assert (await directory.get(store)).currency == "EUR"
    before = await _counts(database)
    bad_adds = [
        {"shopify_domain": "evil.example.com"},
        {"shopify_domain": "https://127.0.0.1/some/path"},
        {"name": "x" * 5000},
        {"name": "Ac\x00me"},
        {"shopify_token": "   "},
        {"klaviyo_key": "   "},
        {"currency": "usdollar"},
        {"timezone": "localtime"},
        {"timezone": "Factory"},
        {"timezone": "right/UTC"},
    ]
    for change in bad_adds:
        domain = change.pop("shopify_domain", "new.myshopify.com")
        with pytest.raises(InputError):
            await _add(directory, domain, "newcomer", **change)
    assert await _counts(database) == before

    original = await directory.get(store)
    for change in [
        {"name": "x" * 5000},
        {"name": "Ac\x00me"},
        {"shopify_token": ""},
        {"shopify_token": "  "},
        {"currency": "usdollar"},
        {"timezone": "posix/UTC"},
        {"name": "Fine", "timezone": "localtime"},  # one bad field: nothing is saved
    ]:
        with pytest.raises(InputError):
            await directory.update(store, **change)
    assert await directory.get(store) == original

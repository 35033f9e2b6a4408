"""The store settings form applies the store rules: a refused value shows its error on the
form (422) and nothing is saved, whether typed in the page or posted by hand."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import BrowserContext, expect

from storesync.storage.crypto import SecretBox
from storesync.stores import StoreDirectory, StoreInfo
from tests.web.conftest import Site, sign_in


def _stored(site: Site, store_id: int) -> tuple[StoreInfo, str]:
    async def read(database: Any) -> tuple[StoreInfo, str]:
        directory = StoreDirectory(database, SecretBox.from_settings(site.deployment.settings))
        credentials = await directory.credentials(store_id)
        return await directory.get(store_id), credentials.shopify_token

    return site.deployment.run(read)  # type: ignore[no-any-return]


def test_refused_settings_show_the_error_and_save_nothing(
    context: BrowserContext, site: Site
) -> None:
    store = site.deployment.add_store("web", "Input Test", "input-test.myshopify.com")
    before = _stored(site, store)
    page = context.new_page()
    sign_in(page, site.url, site.token)
    settings = f"{site.url}/stores/{store}/settings"

    # Typed in the form: the page shows why, and keeps the saved values.
    page.goto(settings)
    page.get_by_label("Time zone (IANA)").fill("localtime")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown time zone 'localtime'")
    assert _stored(site, store) == before

    # Posted by hand, past the form's own limits (maxlength, required).
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    refused = [
        ({"name": "Input\x00Test"}, "control characters"),
        ({"name": "x" * 5000}, "at most 200 characters"),
        ({"name": "In\x1bput"}, "control characters"),
        ({"timezone": "Factory"}, "unknown time zone"),
        ({"timezone": "right/UTC"}, "unknown time zone"),
        ({"timezone": "posix/Europe/Lisbon"}, "unknown time zone"),
        ({"shopify_token": "shpat new"}, "must not contain spaces"),
        ({"name": "Renamed", "timezone": "localtime"}, "unknown time zone"),
    ]
    for fields, message in refused:
        answer = context.request.post(
            settings,
            form={"csrf": csrf, "name": "Input Test", "timezone": "UTC", **fields},
            max_redirects=0,
        )
        assert answer.status == 422, (fields, answer.status)
        assert message in answer.text(), fields
        assert _stored(site, store) == before, fields

    # A credential field of spaces is a blank field: it keeps the saved credential.
    kept = context.request.post(
        settings,
        form={"csrf": csrf, "name": "Input Test", "timezone": "UTC", "shopify_token": "   "},
        max_redirects=0,
    )
    assert kept.status in (200, 303), kept.status
    assert _stored(site, store)[1] == before[1]

"""Sessions and forms in a real browser: signed out, every page sends you to sign in; a form
posted without the session's CSRF token is refused; the cookie is HttpOnly and SameSite=Lax
and holds no token; a signed-in cookie does not open the bearer-token API; pages escape what
they show.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from playwright.sync_api import BrowserContext, expect

from tests.web.conftest import Site, sign_in


def test_signed_out_every_page_redirects_to_sign_in(context: BrowserContext, site: Site) -> None:
    store = site.stores["acme-outdoors.myshopify.com"]
    page = context.new_page()
    pages = [
        "/stores",
        f"/stores/{store}",
        f"/stores/{store}?period=yesterday",
        f"/stores/{store}/settings",
        "/jobs",
        "/jobs?status=failed",
        "/jobs/1",
    ]
    for path in pages:
        page.goto(site.url + path)
        landed = urlparse(page.url)
        assert landed.path == "/sign-in", f"{path} led to {page.url}"
        assert parse_qs(landed.query)["next"] == [path]
        expect(page.get_by_label("API token")).to_be_visible()
    page.goto(site.url + "/")
    assert urlparse(page.url).path == "/sign-in"

    # What the pages' script fetches answers 401 (a script cannot follow a sign-in page).
    live = ["/web/events", "/web/queue", "/web/stores", "/web/jobs", "/web/jobs/1"]
    for path in [*live, f"/web/stores/{store}/figures"]:
        assert context.request.get(site.url + path).status == 401, path

    # Signing in from there comes back to the page asked for.
    page.goto(site.url + "/jobs?status=failed")
    page.get_by_label("API token").fill(site.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.url + "/jobs?status=failed")


def test_form_posts_without_the_csrf_token_are_refused(context: BrowserContext, site: Site) -> None:
    store = site.stores["loja-lisboa.myshopify.com"]
    page = context.new_page()
    sign_in(page, site.url, site.token)
    page.goto(f"{site.url}/stores/{store}?period=last_30_days")
    jobs_before = context.request.get(f"{site.url}/web/jobs?store={store}").text()

    # The form as a page would send it, less its hidden token: refused, nothing queued.
    for form in ({"period": "last_30_days"}, {"period": "last_30_days", "csrf": "forged"}):
        refused = context.request.post(f"{site.url}/stores/{store}/sync", form=form)
        assert refused.status == 403
        assert "did not carry its security token" in refused.text()
    refused = context.request.post(f"{site.url}/sign-out", form={})
    assert refused.status == 403
    assert context.request.get(f"{site.url}/web/jobs?store={store}").text() == jobs_before

    # The same in the browser, with the page's script out of the way: the Refused page.
    page.evaluate(
        """() => {
            const form = document.querySelector('form.sync');
            form.querySelector('input[name=csrf]').remove();
            HTMLFormElement.prototype.submit.call(form);
        }"""
    )
    expect(page.get_by_role("heading", name="Refused")).to_be_visible()
    page.goto(f"{site.url}/stores")
    expect(page.get_by_role("heading", name="Stores")).to_be_visible()  # still signed in


def test_cookie_session_sign_out_and_bad_tokens(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    page.goto(site.url + "/sign-in")
    page.get_by_label("API token").fill("sst_not_a_real_token_at_all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That API token is not valid")

    sign_in(page, site.url, site.token)
    (cookie,) = [c for c in context.cookies() if c["name"] == "storesync_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert site.token not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it

    # The cookie is for the pages only: the API still wants its bearer token.
    assert context.request.get(site.url + "/api/stores").status == 401

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(site.url + "/stores")
    assert urlparse(page.url).path == "/sign-in"


def test_pages_escape_what_they_show(context: BrowserContext, site: Site) -> None:
    name = '<img src=x onerror="window.__owned=1">Shop & Co'
    store = site.deployment.add_store("web", name, "escape-test.myshopify.com")
    page = context.new_page()
    sign_in(page, site.url, site.token)
    expect(page.get_by_role("link", name=name)).to_be_visible()
    page.goto(f"{site.url}/stores/{store}")
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    assert page.evaluate("window.__owned") is None
    assert page.locator("img").count() == 0

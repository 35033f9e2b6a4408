"""Who is asking, from the session cookie: dependencies of the web routes.

- ``PageVisitor``: a signed-in visitor, or a redirect to the sign-in page (pages);
- ``LiveVisitor``: a signed-in visitor, or 401 (the event stream and the page's own partial
  requests, which a script makes and cannot follow to a sign-in page);
- ``CheckedForm``: a form posted by a signed-in visitor with the session's CSRF token (field
  ``csrf``, or header ``X-CSRF-Token``), or 403.

The API's bearer-token dependencies are untouched: the cookie is accepted only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import FormData

from storesync.accounts import AccountRef
from storesync.serving.context import AppContext, context_of
from storesync.web.render import Renderer
from storesync.web.session import COOKIE, Session, SessionSigner
from storesync.web.signin import account_of_session


class SignInRequired(Exception):
    """The page needs a signed-in visitor; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRejected(Exception):
    """A form or action arrived without this session's CSRF token; answered with 403."""


@dataclass(frozen=True, slots=True)
class WebState:
    """What the web routes share, built on first use from the app's settings."""

    signer: SessionSigner
    renderer: Renderer


@dataclass(frozen=True, slots=True)
class Visitor:
    account: AccountRef
    session: Session
    csrf: str


def web_state(request: Request) -> WebState:
    """The signer and renderer of this app (created once, after the app has started)."""
    state = getattr(request.app.state, "web", None)
    if state is None:
        renderer: Renderer = request.app.state.web_renderer
        state = WebState(SessionSigner.from_settings(context_of(request).settings), renderer)
        request.app.state.web = state
    return cast(WebState, state)


def cookie_session(request: Request) -> Session | None:
    """The request's valid session (signed in or not), or None."""
    return web_state(request).signer.loads(request.cookies.get(COOKIE))


async def visitor_of(request: Request) -> Visitor | None:
    """The signed-in visitor, while their session is open and their API token usable."""
    session = cookie_session(request)
    if session is None or not session.signed_in:
        return None
    account = await account_of_session(context_of(request).database, session)
    if account is None:
        return None
    return Visitor(account, session, web_state(request).signer.csrf_token(session))


def here(request: Request) -> str:
    """The request's path and query, to come back to after signing in."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def page_visitor(request: Request) -> Visitor:
    visitor = await visitor_of(request)
    if visitor is None:
        raise SignInRequired(here(request))
    return visitor


async def live_visitor(request: Request) -> Visitor:
    visitor = await visitor_of(request)
    if visitor is None:
        raise HTTPException(401, "not signed in: sign in at /sign-in")
    return visitor


PageVisitor = Annotated[Visitor, Depends(page_visitor)]
LiveVisitor = Annotated[Visitor, Depends(live_visitor)]
State = Annotated[WebState, Depends(web_state)]
Context = Annotated[AppContext, Depends(context_of)]


@dataclass(frozen=True, slots=True)
class Posted:
    """A form posted by a signed-in visitor with the right CSRF token."""

    visitor: Visitor
    form: FormData

    def get(self, name: str) -> str:
        value = self.form.get(name)
        return value.strip() if isinstance(value, str) else ""


async def checked_form(request: Request) -> Posted:
    """The posted form, once the session's CSRF token is found in it (or in the header).

    Not signed in: redirect to sign in. Signed in without the right token: 403. (The sign-in
    form, posted before there is a visitor, checks its token itself.)
    """
    visitor = await visitor_of(request)
    if visitor is None:
        raise SignInRequired("/stores")
    form = await request.form()
    token = form.get("csrf") or request.headers.get("x-csrf-token")
    if not isinstance(token, str) or not web_state(request).signer.csrf_valid(
        visitor.session, token
    ):
        raise CsrfRejected()
    return Posted(visitor, form)


CheckedForm = Annotated[Posted, Depends(checked_form)]


def sign_in_url(next_path: str) -> str:
    return "/sign-in?next=" + quote(safe_next(next_path), safe="/")


def safe_next(value: str | None) -> str:
    """A local path to go to after signing in; anything else (another site) is /stores."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/stores"
    if any(ord(c) < 32 for c in value):
        return "/stores"
    return value

"""Signing in (with an API token, or a one-time link) and out.

Failed sign-ins (a bad token, a used or bogus link) count against the client's address with
the API's bearer-token failures (:mod:`storesync.serving.throttle`): past the limit, the form
answers 429 with ``Retry-After`` without looking the token up. Signing out ends the session on
the server too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from storesync.serving.context import AppContext
from storesync.serving.throttle import TooManyFailures, client_address
from storesync.web.deps import (
    CheckedForm,
    Context,
    State,
    WebState,
    cookie_session,
    safe_next,
    visitor_of,
)
from storesync.web.session import COOKIE, SESSION_SECONDS, Session
from storesync.web.signin import (
    account_of_token,
    account_of_token_id,
    end_session,
    open_session,
    redeem_sign_in_link,
)

router = APIRouter(include_in_schema=False)

NOTICES = {
    "signed_out": "You are signed out.",
}


def set_session(response: Response, request: Request, state: WebState, session: Session) -> None:
    """Send ``session`` as the HttpOnly, SameSite=Lax cookie (Secure over HTTPS)."""
    response.set_cookie(
        COOKIE,
        state.signer.dumps(session),
        max_age=SESSION_SECONDS if session.signed_in else None,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


async def start_session(
    response: Response,
    request: Request,
    state: WebState,
    ctx: AppContext,
    *,
    account_id: int,
    token_id: int,
) -> None:
    """Open a signed-in session: recorded on the server, sent as the cookie."""
    session = Session.for_account(account_id, token_id)
    await open_session(ctx.database, session)
    await ctx.tokens.touch(token_id)
    set_session(response, request, state, session)


def throttled_page(request: Request, state: WebState, exc: TooManyFailures) -> Response:
    response = sign_in_page(
        request,
        state,
        next_path="/stores",
        error=f"Too many failed sign-ins from this address: try again in {exc.retry_after} s.",
        status_code=429,
    )
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def sign_in_page(
    request: Request,
    state: WebState,
    *,
    next_path: str,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    """The sign-in form, with a fresh anonymous session when there is none to carry its CSRF
    token."""
    session = cookie_session(request)
    fresh = session is None or session.signed_in
    if fresh:
        session = Session.anonymous()
    assert session is not None
    response = state.renderer.response(
        request,
        "sign_in.html",
        {
            "csrf": state.signer.csrf_token(session),
            "next_path": safe_next(next_path),
            "error": error,
            "notice": notice,
        },
        status_code=status_code,
    )
    if fresh:
        set_session(response, request, state, session)
    return response


@router.get("/sign-in")
async def sign_in_form(
    request: Request,
    state: State,
    next: Annotated[str | None, Query()] = None,
    notice: Annotated[str | None, Query()] = None,
) -> Response:
    if await visitor_of(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return sign_in_page(
        request, state, next_path=next or "/stores", notice=NOTICES.get(notice or "")
    )


@router.post("/sign-in")
async def sign_in(request: Request, state: State, ctx: Context) -> Response:
    form = await request.form()
    token, csrf, next_path = (form.get(k) for k in ("token", "csrf", "next"))
    next_path = next_path if isinstance(next_path, str) else "/stores"
    session = cookie_session(request)
    if session is None or not isinstance(csrf, str) or not state.signer.csrf_valid(session, csrf):
        return sign_in_page(
            request,
            state,
            next_path=next_path,
            error="This form expired or did not come from this page: please try again.",
            status_code=403,
        )
    address = client_address(request)
    try:
        ctx.tokens.throttle.check(address)
    except TooManyFailures as exc:
        return throttled_page(request, state, exc)
    found = await account_of_token(ctx.database, token) if isinstance(token, str) else None
    if found is None:
        ctx.tokens.throttle.failed(address)
        return sign_in_page(
            request,
            state,
            next_path=next_path,
            error="That API token is not valid (unknown, revoked or expired). Create one with "
            "`storesync tokens create --account NAME`.",
            status_code=401,
        )
    account, token_id = found
    response = RedirectResponse(safe_next(next_path), status_code=303)
    await start_session(response, request, state, ctx, account_id=account.id, token_id=token_id)
    return response


@router.get("/sign-in/once/{secret}")
async def sign_in_once(secret: str, request: Request, state: State, ctx: Context) -> Response:
    """A one-time link: it signs in once, then never again."""
    address = client_address(request)
    try:
        ctx.tokens.throttle.check(address)
    except TooManyFailures as exc:
        response = throttled_page(request, state, exc)
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    token_id = await redeem_sign_in_link(ctx.database, secret)
    account = await account_of_token_id(ctx.database, token_id) if token_id else None
    if token_id is None or account is None:
        ctx.tokens.throttle.failed(address)
        response = sign_in_page(
            request,
            state,
            next_path="/stores",
            error="This sign-in link was already used or has expired. Sign in with an API "
            "token, or run `storesync demo` again for a new link.",
            status_code=410,
        )
    else:
        response = RedirectResponse("/stores", status_code=303)
        await start_session(response, request, state, ctx, account_id=account.id, token_id=token_id)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post("/sign-out")
async def sign_out(posted: CheckedForm, ctx: Context) -> Response:
    await end_session(ctx.database, posted.visitor.session)
    response = RedirectResponse("/sign-in?notice=signed_out", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response

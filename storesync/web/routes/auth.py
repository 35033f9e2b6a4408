"""Signing in (with an API token, or a one-time link) and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

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
from storesync.web.signin import account_of_token, account_of_token_id, redeem_sign_in_link

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
    found = await account_of_token(ctx.database, token) if isinstance(token, str) else None
    if found is None:
        return sign_in_page(
            request,
            state,
            next_path=next_path,
            error="That API token is not valid. Create one with "
            "`storesync tokens create --account NAME`.",
            status_code=401,
        )
    account, token_id = found
    response = RedirectResponse(safe_next(next_path), status_code=303)
    set_session(response, request, state, Session.for_account(account.id, token_id))
    return response


@router.get("/sign-in/once/{secret}")
async def sign_in_once(secret: str, request: Request, state: State, ctx: Context) -> Response:
    """A one-time link: it signs in once, then never again."""
    token_id = await redeem_sign_in_link(ctx.database, secret)
    account = await account_of_token_id(ctx.database, token_id) if token_id else None
    if token_id is None or account is None:
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
        set_session(response, request, state, Session.for_account(account.id, token_id))
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post("/sign-out")
async def sign_out(_posted: CheckedForm) -> Response:
    response = RedirectResponse("/sign-in?notice=signed_out", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response

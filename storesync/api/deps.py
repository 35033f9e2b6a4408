"""Dependencies as types: ``ContextDep``, ``CurrentCaller``, ``CurrentAccount``, ``AdminCaller``,
``OwnedStore``, ``OwnedJob``, ``PeriodQuery``. A route states what it needs in its signature
and gets it checked.

Every bearer token is checked by :func:`resolve_caller`: an address that failed too often is
refused with 429 before its token is looked up, and an unknown, revoked or expired token is a
401 that counts as one more failure of its address.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storesync.accounts import AccountRef
from storesync.api.schemas import MAX_ID
from storesync.errors import InputError, NotFoundError
from storesync.periods import Period
from storesync.queue import Job
from storesync.serving.context import AppContext, context_of
from storesync.serving.throttle import TooManyFailures, client_address
from storesync.serving.tokens import Caller, TokenRefused
from storesync.stores import StoreInfo

ContextDep = Annotated[AppContext, Depends(context_of)]

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token from `storesync tokens create --account NAME`.",
)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    return credentials.credentials


def too_many(exc: TooManyFailures) -> HTTPException:
    return HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)})


async def resolve_caller(
    ctx: AppContext, request: Request, token: str, store_id: int | None = None
) -> tuple[Caller, StoreInfo | None]:
    """The token's caller (and store ``store_id`` when its account owns it), or 429 / 401."""
    address = client_address(request)
    throttle = ctx.tokens.throttle
    try:
        throttle.check(address)
    except TooManyFailures as exc:
        raise too_many(exc) from None
    try:
        caller, store = await ctx.tokens.caller_and_store(token, store_id)
    except TokenRefused as exc:
        throttle.failed(address)
        raise _unauthorized(str(exc)) from None
    ctx.rate_limits.take(caller.account.id)  # 429 once the account's minute is used up
    return caller, store


async def current_caller(ctx: ContextDep, request: Request, credentials: Bearer) -> Caller:
    """The caller of the request's bearer token, or 401 (429 after too many failures)."""
    caller, _store = await resolve_caller(ctx, request, bearer_token(credentials))
    return caller


CurrentCaller = Annotated[Caller, Depends(current_caller)]


async def current_account(caller: CurrentCaller) -> AccountRef:
    """The account of the request's bearer token, or 401."""
    return caller.account


CurrentAccount = Annotated[AccountRef, Depends(current_account)]

StoreId = Annotated[int, Path(ge=1, le=MAX_ID, description="The store's id.")]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="The job's id.")]


async def owned_store(
    store_id: StoreId, ctx: ContextDep, request: Request, credentials: Bearer
) -> StoreInfo:
    """The store, when the token is valid (else 401) and its account owns it (else 404).

    Token and store are resolved in one query: this is on the path of every dashboard read.
    """
    _caller, store = await resolve_caller(ctx, request, bearer_token(credentials), store_id)
    if store is None:
        raise NotFoundError(f"store {store_id} does not exist")
    return store


OwnedStore = Annotated[StoreInfo, Depends(owned_store)]


async def owned_job(job_id: JobId, account: CurrentAccount, ctx: ContextDep) -> Job:
    """The job, when its store belongs to the caller's account; 404 otherwise."""
    job = await ctx.queue.get(job_id)
    try:
        await ctx.stores.get(job.store_id, account_id=account.id)
    except NotFoundError:
        raise NotFoundError(f"job {job_id} does not exist") from None
    return job


OwnedJob = Annotated[Job, Depends(owned_job)]


def checked_period(ctx: AppContext, start: str, end: str) -> Period:
    """The period ``start..end``, checked as everywhere (see :meth:`Period.checked`)."""
    return Period.parse(start, end, max_days=ctx.settings.max_period_days)


_DATE = {"format": "date"}


def period_query(
    ctx: ContextDep,
    start: Annotated[
        str,
        Query(
            description="First day, YYYY-MM-DD, in the store's time zone.", json_schema_extra=_DATE
        ),
    ],
    end: Annotated[
        str, Query(description="Last day, YYYY-MM-DD, inclusive.", json_schema_extra=_DATE)
    ],
) -> Period:
    return checked_period(ctx, start, end)


PeriodQuery = Annotated[Period, Depends(period_query)]


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


#: Each route's query parameter names, by ``id(route)`` (routes are not hashable).
_ALLOWED: dict[int, tuple[APIRoute, frozenset[str]]] = {}


def _allowed_query(route: APIRoute) -> frozenset[str]:
    known = _ALLOWED.get(id(route))
    if known is None or known[0] is not route:
        known = _ALLOWED[id(route)] = (route, frozenset(_query_names(route.dependant)))
    return known[1]


async def known_query_only(request: Request) -> None:
    """Refuse query parameters the route does not take: a typo such as ``?forse=true``
    must be an error, not a request silently answered as if the option were absent."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _allowed_query(route)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) if allowed else "no query parameters"
        raise InputError(
            f"unknown query parameter {', '.join(repr(u) for u in unknown)}; this route takes "
            f"{takes}"
        )

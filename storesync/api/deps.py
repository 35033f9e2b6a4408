"""Dependencies as types: ``ContextDep``, ``CurrentAccount``, ``OwnedStore``, ``OwnedJob``,
``PeriodQuery``. A route states what it needs in its signature and gets it checked.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storesync.accounts import AccountRef
from storesync.api.context import ApiContext
from storesync.api.schemas import MAX_ID
from storesync.errors import InputError, NotFoundError
from storesync.periods import Period, parse_date
from storesync.queue import Job
from storesync.stores import StoreInfo

#: Dates outside this range are refused: the arithmetic on periods (the previous period, the
#: exact UTC bounds) must never overflow, and no shop has orders from before 1970.
EARLIEST = date(1970, 1, 1)
LATEST = date(9998, 12, 31)


def get_context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.context)


ContextDep = Annotated[ApiContext, Depends(get_context)]

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token from `storesync tokens create --account NAME`.",
)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    return credentials.credentials


async def current_account(ctx: ContextDep, credentials: Bearer) -> AccountRef:
    """The account of the request's bearer token, or 401; 429 when the account has used up
    its requests of the minute."""
    account = await ctx.tokens.account(_token(credentials))
    if account is None:
        raise _unauthorized("unknown API token")
    ctx.rate_limits.take(account.id)
    return account


CurrentAccount = Annotated[AccountRef, Depends(current_account)]

StoreId = Annotated[int, Path(ge=1, le=MAX_ID, description="The store's id.")]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="The job's id.")]


async def owned_store(store_id: StoreId, ctx: ContextDep, credentials: Bearer) -> StoreInfo:
    """The store, when the token is valid (else 401) and its account owns it (else 404).

    Token and store are resolved in one query: this is on the path of every dashboard read.
    """
    account, store = await ctx.tokens.account_and_store(_token(credentials), store_id)
    if account is None:
        raise _unauthorized("unknown API token")
    ctx.rate_limits.take(account.id)
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


def day(value: str, name: str) -> date:
    """A ``YYYY-MM-DD`` date in the supported range, or :class:`InputError` saying why not."""
    parsed = parse_date(value, name=name)
    if not EARLIEST <= parsed <= LATEST:
        raise InputError(f"{name} {parsed} is out of range: use a date from {EARLIEST} to {LATEST}")
    return parsed


def checked_period(ctx: ApiContext, start: str, end: str) -> Period:
    """The period ``start..end``: well-formed, in order, and not longer than the maximum."""
    return Period.checked(
        day(start, "start"), day(end, "end"), max_days=ctx.settings.max_period_days
    )


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

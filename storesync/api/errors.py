"""Every error is JSON ``{"detail": "<one sentence>"}`` with a status that says whose fault.

- 401: no token, or an unknown, revoked or expired one (``WWW-Authenticate: Bearer``);
- 403: a token whose scope does not allow the route (``/metrics`` needs an admin token);
- 429: too many failed authentications from the client's address (``Retry-After``);
- 404: an id that does not exist or belongs to another account (never 403: that would tell a
  stranger the id exists);
- 409: an action the job's state does not allow (cancel a finished job, retry a running one),
  or a store for a shop that is already connected;
- 400: a request body that cannot be decoded at all (FastAPI's own check);
- 422: bad input (a malformed date, end before start, a period too long, an unknown time zone,
  a body that does not match its schema), checked before anything is written;
- 429: the account is over one of its limits: API requests a minute, users' syncs queued at
  once, stores (``Retry-After``: seconds to wait; see :mod:`storesync.serving.ratelimit` and
  :mod:`storesync.queue.fairness`);
- 503: the database cannot be reached right now (``Retry-After``); anything else unexpected
  is a 500 whose details go to the log, not to the caller.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from storesync.api.schemas import ErrorOut
from storesync.errors import (
    ConflictError,
    InputError,
    InvalidStateError,
    LimitExceededError,
    NotFoundError,
)
from storesync.storage.engine import is_unavailable

log = logging.getLogger(__name__)


#: The ``responses=`` argument of FastAPI's route decorators.
Responses = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


UNAUTHORIZED: Responses = {
    401: _error("No bearer token, or an unknown, revoked or expired one."),
    429: {
        **_error("Too many failed authentications from this address; see Retry-After."),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}
FORBIDDEN: Responses = {403: _error("The token's scope does not allow this.")}
NOT_FOUND: Responses = {404: _error("No such resource in the caller's account.")}
CONFLICT: Responses = {409: _error("The job's current state does not allow this.")}
SHOP_TAKEN: Responses = {409: _error("A store for this shop domain already exists.")}
INVALID: Responses = {422: _error("The input is invalid; the detail says what is wrong.")}
#: For routes with a JSON body: one that cannot even be decoded is FastAPI's 400.
UNREADABLE: Responses = {400: _error("The request body could not be decoded.")}
RATE_LIMITED: Responses = {
    429: {
        **_error("The account is over a limit; the detail says which. Retry after the delay."),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"},
            }
        },
    }
}
#: What every authenticated route can answer besides success.
API_ERRORS: Responses = {**UNAUTHORIZED, **INVALID, **RATE_LIMITED}


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def describe_validation(exc: RequestValidationError) -> str:
    """One readable sentence from pydantic's error list, e.g. ``query start: field required``."""
    parts = []
    for error in exc.errors():
        location = [str(p) for p in error.get("loc", ())]
        where = " ".join(location[:1]) + (" " + ".".join(location[1:]) if len(location) > 1 else "")
        message = str(error.get("msg", "is invalid"))
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "the request is invalid"


def install_error_handlers(app: FastAPI) -> None:
    """Map storesync's exceptions and FastAPI's own errors to the JSON shape above."""

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return _detail(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _detail(422, describe_validation(exc))

    @app.exception_handler(InputError)
    async def invalid_input(_request: Request, exc: InputError) -> JSONResponse:
        return _detail(422, str(exc))

    @app.exception_handler(ConflictError)
    async def clash(_request: Request, exc: ConflictError) -> JSONResponse:
        return _detail(409, str(exc))

    @app.exception_handler(NotFoundError)
    async def not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return _detail(404, str(exc))

    @app.exception_handler(LimitExceededError)
    async def over_limit(_request: Request, exc: LimitExceededError) -> JSONResponse:
        seconds = max(1, math.ceil(exc.retry_after))
        return _detail(429, str(exc), {"Retry-After": str(seconds)})

    @app.exception_handler(InvalidStateError)
    async def conflict(_request: Request, exc: InvalidStateError) -> JSONResponse:
        return _detail(409, str(exc))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_unavailable(exc):
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
            return _detail(
                503,
                "the database is unavailable right now; try again shortly",
                {"Retry-After": "2"},
            )
        # The message may hold internals (SQL, paths): log it, answer a plain sentence.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _detail(500, "internal error; the server log has the details")

    # The database's errors get their own entries: Starlette runs a handler of Exception
    # itself, the answer sent, then raises the error again for the server, which logs a
    # traceback and drops the connection. A database restart is no place for that.
    for database_trouble in (DBAPIError, OSError):
        app.add_exception_handler(database_trouble, unexpected)
    app.add_exception_handler(Exception, unexpected)

"""The caller's account's API tokens: list them (never the secrets), create, revoke.

Tokens created here have the normal scope; admin tokens come from the command line only, so a
tenant cannot grant itself the operator's view. A token cannot revoke itself: the account keeps
a working token to act with (the operator can always `storesync tokens revoke ID`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from storesync.accounts import TokenInfo, issue_token, list_tokens, revoke_token
from storesync.api.deps import ContextDep, CurrentCaller
from storesync.api.errors import API_ERRORS, NOT_FOUND, UNREADABLE, Responses
from storesync.api.schemas import (
    MAX_ID,
    ErrorOut,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenPublic,
)
from storesync.errors import InvalidStateError

router = APIRouter(prefix="/api/tokens", tags=["tokens"], responses=API_ERRORS)

SELF_REVOKE: Responses = {
    409: {"model": ErrorOut, "description": "The token named is the one making the request."}
}
TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="The token's id.")]


def _public(info: TokenInfo) -> TokenPublic:
    data = info.to_json()
    del data["account"]  # the caller's own: nothing to tell
    return TokenPublic.model_validate(data)


@router.get("", response_model=TokenList, summary="The caller's account's tokens")
async def tokens(caller: CurrentCaller, ctx: ContextDep) -> TokenList:
    found = await list_tokens(ctx.database, account_id=caller.account.id)
    return TokenList(items=[_public(t) for t in found])


@router.post(
    "",
    status_code=201,
    response_model=TokenCreated,
    responses=UNREADABLE,
    summary="Create a token for the caller's account (shown once)",
)
async def create(body: TokenCreate, caller: CurrentCaller, ctx: ContextDep) -> TokenCreated:
    info, token = await issue_token(
        ctx.database,
        caller.account.name,
        body.label,
        expires_in_days=body.expires_in_days,
        max_active=ctx.settings.max_tokens_per_account,
    )
    return TokenCreated(**_public(info).model_dump(), token=token)


@router.delete(
    "/{token_id}",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **SELF_REVOKE},
    summary="Revoke one of the account's tokens (refused at once afterwards)",
)
async def revoke(token_id: TokenId, caller: CurrentCaller, ctx: ContextDep) -> Response:
    if token_id == caller.token_id:
        raise InvalidStateError(
            "a token cannot revoke itself: revoke it with another token of the account, or "
            f"with `storesync tokens revoke {token_id}`"
        )
    await revoke_token(ctx.database, token_id, account_id=caller.account.id)
    return Response(status_code=204)

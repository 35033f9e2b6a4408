"""Store CRUD for the caller's account. Credentials go in and are never shown again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from storesync.api.deps import ContextDep, CurrentAccount, OwnedStore
from storesync.api.errors import API_ERRORS, NOT_FOUND, SHOP_TAKEN, UNREADABLE
from storesync.api.schemas import MAX_ID, StoreCreate, StorePage, StorePublic, StoreUpdate

router = APIRouter(prefix="/api/stores", tags=["stores"], responses=API_ERRORS)


@router.get("", response_model=StorePage, summary="The caller's stores")
async def list_stores(
    account: CurrentAccount,
    ctx: ContextDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> StorePage:
    # An account has tens of stores, not millions: one query, then the page.
    stores = await ctx.stores.list(account_id=account.id)
    page = stores[offset : offset + limit]
    return StorePage(
        items=[StorePublic.of(s) for s in page],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if offset + limit < len(stores) else None,
    )


@router.post(
    "",
    status_code=201,
    response_model=StorePublic,
    summary="Add a store to the caller's account",
    responses={
        **UNREADABLE,
        **SHOP_TAKEN,
        201: {"headers": {"Location": {"schema": {"type": "string"}}}},
    },
)
async def add_store(
    body: StoreCreate, account: CurrentAccount, ctx: ContextDep, response: Response
) -> StorePublic:
    store = await ctx.stores.add(
        name=body.name,
        shopify_domain=body.shopify_domain,
        shopify_token=body.shopify_token.get_secret_value(),
        klaviyo_key=body.klaviyo_key.get_secret_value() if body.klaviyo_key else None,
        timezone=body.timezone,
        account=account.name,
        currency=body.currency,
        refresh_periods=body.refresh_periods,
    )
    response.headers["Location"] = f"/api/stores/{store.id}"
    return StorePublic.of(store)


@router.get("/{store_id}", response_model=StorePublic, responses=NOT_FOUND, summary="One store")
async def get_store(store: OwnedStore) -> StorePublic:
    return StorePublic.of(store)


@router.patch(
    "/{store_id}",
    response_model=StorePublic,
    responses={**NOT_FOUND, **UNREADABLE},
    summary="Change a store's name, credentials, time zone, currency or refresh periods",
)
async def update_store(store: OwnedStore, body: StoreUpdate, ctx: ContextDep) -> StorePublic:
    changes: dict[str, Any] = body.model_dump(exclude_none=True)
    for secret in ("shopify_token", "klaviyo_key"):
        value = getattr(body, secret)
        if value is not None:
            changes[secret] = value.get_secret_value()
    updated = await ctx.stores.update(store.id, account_id=store.account_id, **changes)
    return StorePublic.of(updated)


@router.delete(
    "/{store_id}",
    status_code=204,
    response_class=Response,
    responses=NOT_FOUND,
    summary="Remove a store, its jobs and its cached data",
)
async def delete_store(store: OwnedStore, ctx: ContextDep) -> Response:
    await ctx.stores.remove(store.id, account_id=store.account_id)
    ctx.streams.owners.forget(store.id)
    return Response(status_code=204)

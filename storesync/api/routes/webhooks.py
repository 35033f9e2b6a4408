"""``POST /webhooks/shopify``: authenticated by its HMAC, not by a bearer token."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request

from storesync.api.deps import ContextDep
from storesync.api.errors import INVALID
from storesync.api.schemas import ErrorOut, WebhookOutcome
from storesync.api.webhooks import HANDLED_TOPICS, WebhookProcessor, signature_valid

router = APIRouter(tags=["webhooks"])

_BODY = {
    "requestBody": {
        "required": True,
        "description": "The webhook payload exactly as Shopify sent it (the HMAC covers it).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/webhooks/shopify",
    response_model=WebhookOutcome,
    openapi_extra=_BODY,
    responses={
        401: {"model": ErrorOut, "description": "Missing or wrong X-Shopify-Hmac-Sha256."},
        **INVALID,
    },
    summary="Receive a Shopify webhook (orders/create, orders/updated, refunds/create)",
)
async def shopify_webhook(
    request: Request,
    ctx: ContextDep,
    x_shopify_hmac_sha256: Annotated[str | None, Header()] = None,
    x_shopify_topic: Annotated[str | None, Header()] = None,
    x_shopify_shop_domain: Annotated[str | None, Header()] = None,
    x_shopify_webhook_id: Annotated[str | None, Header()] = None,
) -> WebhookOutcome:
    secret = ctx.settings.shopify_api_secret
    if secret is None:
        raise HTTPException(
            401, "webhooks are not accepted: STORESYNC_SHOPIFY_API_SECRET is not set"
        )
    body = await request.body()
    if not signature_valid(secret.get_secret_value(), body, x_shopify_hmac_sha256):
        raise HTTPException(401, "missing or invalid X-Shopify-Hmac-Sha256 signature")
    if x_shopify_topic is None or x_shopify_topic not in HANDLED_TOPICS:
        return WebhookOutcome(status="ignored")
    if not x_shopify_webhook_id or not x_shopify_shop_domain:
        raise HTTPException(
            422, "X-Shopify-Webhook-Id and X-Shopify-Shop-Domain headers are required"
        )
    payload = _json_object(body)
    processor = WebhookProcessor(ctx.database, ctx.queue)
    return await processor.handle(
        webhook_id=x_shopify_webhook_id[:200],
        topic=x_shopify_topic,
        shop_domain=x_shopify_shop_domain,
        payload=payload,
    )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(422, "the webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise HTTPException(422, "the webhook body is not a JSON object")
    return payload

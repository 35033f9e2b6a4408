"""``POST /webhooks/shopify``: authenticated by its HMAC, not by a bearer token.

What a signed delivery that storesync cannot use gets, and why. Shopify retries any answer
outside 2xx (8 times over 4 hours) with the same body, so:

- a body that cannot be read (not JSON, not an object, nested deeper than a JSON parser
  goes, a number too long to convert) is a 422 and nothing is recorded: Shopify never sends
  one, so it is someone's mistake to be told about, and should a retry ever come with a
  readable body it is processed, not taken for a duplicate;
- an id longer than :data:`~storesync.api.webhooks.MAX_WEBHOOK_ID` is a 400 (Shopify's are
  UUIDs), rather than cut into one that another id may share;
- a body that names another shop than ``X-Shopify-Shop-Domain`` is a 401: the header is not
  covered by the signature, and the body says whose it is;
- a readable body whose dates are unusable (``created_at`` in year 1 or 9999, not a date at
  all) is processed with the days it does give, or today, and answered 200: a retry would
  carry the same body and get the same answer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request

from storesync.api.deps import ContextDep
from storesync.api.errors import INVALID
from storesync.api.schemas import ErrorOut, WebhookOutcome
from storesync.api.webhooks import (
    HANDLED_TOPICS,
    MAX_WEBHOOK_ID,
    WebhookProcessor,
    signature_valid,
    signed_shop_domain,
)
from storesync.errors import InputError
from storesync.stores import normalize_domain

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
        400: {"model": ErrorOut, "description": "X-Shopify-Webhook-Id is too long."},
        401: {
            "model": ErrorOut,
            "description": "Missing or wrong X-Shopify-Hmac-Sha256, or a shop domain header "
            "that is not the shop the signed body names.",
        },
        413: {"model": ErrorOut, "description": "The body is larger than a webhook can be."},
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
    if len(x_shopify_webhook_id) > MAX_WEBHOOK_ID:
        raise HTTPException(400, f"X-Shopify-Webhook-Id is longer than {MAX_WEBHOOK_ID} characters")
    payload = _json_object(body)
    _check_shop(x_shopify_shop_domain, payload)
    processor = WebhookProcessor(ctx.database, ctx.queue)
    return await processor.handle(
        webhook_id=x_shopify_webhook_id,
        topic=x_shopify_topic,
        shop_domain=x_shopify_shop_domain,
        payload=payload,
        body_sha256=hashlib.sha256(body).hexdigest(),
    )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(422, "the webhook body is not JSON") from None
    except RecursionError:
        # CPython's parser refuses nesting deeper than its recursion limit (about 1,000).
        raise HTTPException(422, "the webhook body is JSON nested too deeply to read") from None
    if not isinstance(payload, dict):
        raise HTTPException(422, "the webhook body is not a JSON object")
    return payload


def _check_shop(header: str, payload: dict[str, Any]) -> None:
    """Refuse a delivery whose signed body names another shop than its domain header."""
    signed = signed_shop_domain(payload)
    if signed is None:
        return  # the body does not say: the header stands (the body digest stops replays)
    try:
        claimed = normalize_domain(header)
    except InputError:
        claimed = None
    if claimed != signed:
        raise HTTPException(
            401, "X-Shopify-Shop-Domain is not the shop the signed webhook body names"
        )

"""JSON:API representations of Klaviyo's resources, and the fields each list filters on.

Items may carry private ``_``-prefixed keys that filters read (a campaign's channel lives on
its message, not in its attributes); :func:`public` strips them before an item is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from storesync.simulator.config import SimStore
from storesync.simulator.data import StoreData

Item = dict[str, Any]
Fields = dict[str, Callable[[Item], Any]]


def iso(epoch: float | None) -> str | None:
    """A Klaviyo timestamp (``2025-07-01T15:00:00+00:00``)."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def public(item: Item) -> Item:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def account_item(store: SimStore, base: str) -> Item:
    domain = store.shop_domain
    return {
        "type": "account",
        "id": store.klaviyo_account_id,
        "attributes": {
            "test_account": False,
            "contact_information": {
                "default_sender_name": store.name,
                "default_sender_email": f"hello@{domain}",
                "website_url": f"https://{domain}",
                "organization_name": store.name,
            },
            "industry": "Retail",
            "timezone": store.timezone,
            "preferred_currency": store.currency,
            "public_api_key": store.klaviyo_account_id,
            "locale": "en-US",
        },
        "links": {"self": f"{base}/api/accounts/{store.klaviyo_account_id}/"},
    }


def metric_items(data: StoreData, base: str) -> list[Item]:
    items = []
    for m in data.klaviyo.metrics:
        name = m.integration or "Klaviyo"
        integration = {
            "object": "integration",
            "id": f"int-{name.lower()}",
            "key": name.lower(),
            "name": name,
            "category": "eCommerce" if m.integration else "Internal",
        }
        attributes = {"name": m.name, "created": iso(m.created), "updated": iso(m.created)}
        items.append(
            {
                "type": "metric",
                "id": m.id,
                "attributes": {**attributes, "integration": integration},
                "links": {"self": f"{base}/api/metrics/{m.id}/"},
            }
        )
    return items


METRIC_FIELDS: Fields = {
    "integration.name": lambda i: i["attributes"]["integration"]["name"],
    "integration.category": lambda i: i["attributes"]["integration"]["category"],
}


def campaign_items(data: StoreData, base: str) -> list[Item]:
    items = []
    for campaign in data.klaviyo.campaigns:
        message = data.klaviyo.messages[campaign.message]
        sent = campaign.send_time if campaign.status == "Sent" else None
        scheduled = campaign.send_time if campaign.status != "Draft" else None
        items.append(
            {
                "type": "campaign",
                "id": campaign.id,
                "attributes": {
                    "name": campaign.name,
                    "status": campaign.status,
                    "archived": False,
                    "audiences": {"included": [], "excluded": []},
                    "send_options": {"use_smart_sending": True},
                    "send_strategy": {"method": "static", "datetime": iso(campaign.send_time)},
                    "created_at": iso(campaign.created),
                    "scheduled_at": iso(scheduled),
                    "updated_at": iso(campaign.created),
                    "send_time": iso(sent),
                },
                "relationships": {
                    "campaign-messages": {"data": [{"type": "campaign-message", "id": message.id}]}
                },
                "links": {"self": f"{base}/api/campaigns/{campaign.id}/"},
                "_channel": campaign.channel,
                "_created": campaign.created,
                "_scheduled": scheduled,
            }
        )
    return items


CAMPAIGN_FIELDS: Fields = {
    "messages.channel": lambda i: i["_channel"],
    "name": lambda i: i["attributes"]["name"],
    "status": lambda i: i["attributes"]["status"],
    "archived": lambda i: i["attributes"]["archived"],
    "created_at": lambda i: i["_created"],
    "updated_at": lambda i: i["_created"],
    "scheduled_at": lambda i: i["_scheduled"],
}


def flow_items(data: StoreData, base: str) -> list[Item]:
    return [
        {
            "type": "flow",
            "id": f.id,
            "attributes": {
                "name": f.name,
                "status": f.status,
                "archived": False,
                "created": iso(f.created),
                "updated": iso(f.created),
                "trigger_type": f.trigger_type,
            },
            "links": {"self": f"{base}/api/flows/{f.id}/"},
            "_created": f.created,
        }
        for f in data.klaviyo.flows
    ]


FLOW_FIELDS: Fields = {
    "name": lambda i: i["attributes"]["name"],
    "status": lambda i: i["attributes"]["status"],
    "archived": lambda i: i["attributes"]["archived"],
    "trigger_type": lambda i: i["attributes"]["trigger_type"],
    "created": lambda i: i["_created"],
    "updated": lambda i: i["_created"],
}

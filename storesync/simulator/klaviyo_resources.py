"""JSON:API representations of Klaviyo's resources (revision 2026-10-15), and the fields each
list filters on with the operators the revision allows on each.

Items may carry private ``_``-prefixed keys that filters read (a creation time as a number);
:func:`public` strips them before an item is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from storesync.simulator.config import SimStore
from storesync.simulator.data import StoreData

Item = dict[str, Any]
Fields = dict[str, Callable[[Item], Any]]
#: The filter operators revision 2026-10-15 allows on each field (per list endpoint).
Operators = dict[str, frozenset[str]]
_EQUALS = frozenset({"equals"})
_ANY = frozenset({"any"})
_COMPARE = frozenset({"greater-or-equal", "greater-than", "less-or-equal", "less-than"})


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
                "street_address": {
                    "address1": "1 Main Street",
                    "address2": None,
                    "city": "Springfield",
                    "region": None,
                    "country": "US",
                    "zip": "00001",
                },
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
METRIC_OPERATORS: Operators = {"integration.name": _EQUALS, "integration.category": _EQUALS}


def campaign_items(data: StoreData, base: str) -> list[Item]:
    """Campaigns as revision 2026-10-15 lists them: every channel, the name in ``definition``."""
    items = []
    for campaign in data.klaviyo.campaigns:
        message = data.klaviyo.messages[campaign.message]
        items.append(
            {
                "type": "campaign",
                "id": campaign.id,
                "attributes": {
                    "created_at": iso(campaign.created),
                    "updated_at": iso(campaign.created),
                    "definition": {
                        "name": campaign.name,
                        "builder": "wizard",
                        "archived": False,
                        "send_settings": {"send_timezone": "UTC", "send_strategy": "static"},
                    },
                },
                "relationships": {
                    "campaign-messages": {"data": [{"type": "campaign-message", "id": message.id}]}
                },
                "links": {"self": f"{base}/api/campaigns/{campaign.id}/"},
                "_created": campaign.created,
            }
        )
    return items


CAMPAIGN_FIELDS: Fields = {
    "id": lambda i: i["id"],
    "name": lambda i: i["attributes"]["definition"]["name"],
    "archived": lambda i: i["attributes"]["definition"]["archived"],
    "builder": lambda i: i["attributes"]["definition"]["builder"],
    "created_at": lambda i: i["_created"],
    "updated_at": lambda i: i["_created"],
}
CAMPAIGN_OPERATORS: Operators = {
    "id": _ANY,
    "name": frozenset({"contains"}),
    "archived": _EQUALS,
    "builder": _EQUALS,
    "created_at": _COMPARE,
    "updated_at": _COMPARE,
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
    "id": lambda i: i["id"],
    "name": lambda i: i["attributes"]["name"],
    "status": lambda i: i["attributes"]["status"],
    "archived": lambda i: i["attributes"]["archived"],
    "trigger_type": lambda i: i["attributes"]["trigger_type"],
    "created": lambda i: i["_created"],
    "updated": lambda i: i["_created"],
}
FLOW_OPERATORS: Operators = {
    "id": _ANY,
    "name": frozenset({"contains", "ends-with", "equals", "starts-with"}),
    "status": _EQUALS,
    "archived": _EQUALS,
    "trigger_type": _EQUALS,
    "created": _EQUALS | _COMPARE,
    "updated": _EQUALS | _COMPARE,
}

"""Which store-local days a webhook payload affects, and the signature check (no server)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from storesync.api.webhooks import affected_days, sign, signature_valid

LISBON = ZoneInfo("Europe/Lisbon")
NEW_YORK = ZoneInfo("America/New_York")


def test_orders_count_on_the_day_they_were_created_in_the_store_zone() -> None:
    late_evening = {"created_at": "2025-07-01T23:30:00-04:00", "updated_at": "2025-07-09T10:00Z"}
    assert affected_days("orders/create", late_evening, NEW_YORK) == {date(2025, 7, 1)}
    assert affected_days("orders/updated", late_evening, LISBON) == {date(2025, 7, 2)}
    # Without created_at, the other instants stand in; naive ones are read as UTC.
    assert affected_days("orders/updated", {"updated_at": "2025-07-03T23:59:59"}, LISBON) == {
        date(2025, 7, 4)
    }
    assert affected_days("orders/create", {"created_at": "yesterday"}, LISBON) == set()


def test_refunds_mark_their_own_days() -> None:
    refund = {
        "order_id": 820982911946154508,
        "created_at": "2025-12-31T19:00:00-05:00",
        "processed_at": "2025-12-31T19:00:00-05:00",
        "transactions": [{"kind": "refund", "processed_at": "2026-01-02T08:00:00Z"}, "junk"],
    }
    assert affected_days("refunds/create", refund, NEW_YORK) == {
        date(2025, 12, 31),
        date(2026, 1, 2),
    }


def test_signature() -> None:
    body = b'{"id": 1}'
    good = sign("secret", body)
    assert signature_valid("secret", body, good)
    assert signature_valid("secret", body, f" {good} ")
    assert not signature_valid("secret", body + b" ", good)
    assert not signature_valid("other", body, good)
    assert not signature_valid("secret", body, None)
    assert not signature_valid("secret", body, "")
    assert not signature_valid("secret", body, "é" * 44)

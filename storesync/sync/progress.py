"""A job's progress document, which doubles as its checkpoint.

Stored in ``sync_queue.progress`` after every finished chunk, so that a retry (after a crash,
a lapsed lease or a transient error) resumes after the last finished chunk::

    {"chunks_total": 4, "chunks_done": 2, "percent": 40,
     "shopify": <SalesTally checkpoint of the finished chunks> | null,
     "shopify_done": false,
     "klaviyo": <KlaviyoFigures JSON> | null,      # fetched once for the whole period
     "klaviyo_done": false}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from storesync.periods import Period
from storesync.providers.figures import KlaviyoFigures
from storesync.providers.sales import SalesTally


@dataclass(slots=True)
class SyncProgress:
    period: Period
    tz: ZoneInfo
    chunks_total: int
    chunks_done: int
    tally: SalesTally
    shopify_done: bool
    klaviyo: KlaviyoFigures | None
    needs_klaviyo: bool

    @classmethod
    def resume(
        cls,
        saved: dict[str, Any] | None,
        *,
        period: Period,
        tz: ZoneInfo,
        chunks_total: int,
        needs_klaviyo: bool,
    ) -> SyncProgress:
        """Continue from ``saved`` when it is a checkpoint of the same work, else start over."""
        fresh = cls(
            period=period,
            tz=tz,
            chunks_total=chunks_total,
            chunks_done=0,
            tally=SalesTally(period=period, tz=tz),
            shopify_done=False,
            klaviyo=None,
            needs_klaviyo=needs_klaviyo,
        )
        if not saved or saved.get("chunks_total") != chunks_total:
            return fresh
        try:
            if saved.get("shopify"):
                fresh.tally = SalesTally.from_checkpoint(saved["shopify"])
                if fresh.tally.tz.key != tz.key:
                    raise ValueError("the store's time zone changed since the checkpoint")
                fresh.chunks_done = int(saved.get("chunks_done", 0))
                fresh.shopify_done = bool(saved.get("shopify_done"))
            if saved.get("klaviyo"):
                fresh.klaviyo = KlaviyoFigures.from_json(saved["klaviyo"])
        except (KeyError, TypeError, ValueError):
            return cls.resume(
                None, period=period, tz=tz, chunks_total=chunks_total, needs_klaviyo=needs_klaviyo
            )
        return fresh

    @property
    def percent(self) -> int:
        units = self.chunks_total + (1 if self.needs_klaviyo else 0)
        done = self.chunks_done + (1 if self.needs_klaviyo and self.klaviyo is not None else 0)
        return int(100 * done / units) if units else 100

    def to_json(self) -> dict[str, Any]:
        return {
            "chunks_total": self.chunks_total,
            "chunks_done": self.chunks_done,
            "percent": self.percent,
            "shopify": self.tally.to_checkpoint() if self.chunks_done else None,
            "shopify_done": self.shopify_done,
            "klaviyo": self.klaviyo.to_json() if self.klaviyo is not None else None,
            "klaviyo_done": self.klaviyo is not None,
        }

    def summary_json(self) -> dict[str, Any]:
        """The progress without the bulky checkpoint (what the job keeps once completed)."""
        return {
            "chunks_total": self.chunks_total,
            "chunks_done": self.chunks_done,
            "percent": self.percent,
        }

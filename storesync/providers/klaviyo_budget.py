"""Klaviyo's daily Reporting API budget, tracked in the database.

Klaviyo allows 225 report calls a day per account (``/api/campaign-values-reports`` and
``/api/flow-values-reports`` together), shared by every integration of the account. Running out
halfway through a sync wastes the calls already made, so a sync reserves the report calls it
needs *before* it starts, atomically, in table ``klaviyo_report_budget`` (one row per Klaviyo
account and UTC day); a reservation that does not fit is refused with a
:class:`~storesync.errors.RetryableError` whose ``retry_at`` is the next UTC midnight.

The reservation is one conditional ``UPDATE … SET used = used + n WHERE used + n <= limit``:
on PostgreSQL a concurrent update of the same row waits for the row lock and re-checks the
condition; on SQLite the transaction starts with ``BEGIN IMMEDIATE``. Either way two workers
can never both take the last call, whichever machine they run on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync.errors import RetryableError
from storesync.storage.dialect import insert_ignoring_conflicts
from storesync.storage.engine import Database
from storesync.storage.models import KlaviyoReportBudget

_table = cast(Table, KlaviyoReportBudget.__table__)


def next_utc_midnight(now: datetime) -> datetime:
    """The start of the next UTC day after ``now``."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(day, time.min, tzinfo=UTC)


class ReportBudget:
    """Report calls per Klaviyo account and UTC day, at most ``daily_limit``."""

    def __init__(
        self,
        database: Database,
        *,
        daily_limit: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.daily_limit = daily_limit
        self._clock = clock

    def today(self) -> date:
        """The UTC day the budget is counted in now."""
        return self._clock().astimezone(UTC).date()

    async def reserve(self, account_key: str, calls: int = 1) -> int:
        """Take ``calls`` report calls from today's budget; return how many are left.

        Raises :class:`RetryableError` (``retry_at`` = next UTC midnight) when they do not fit;
        nothing is taken then.
        """
        if calls < 1:
            raise ValueError("reserve at least one call")
        now = self._clock()
        day = now.astimezone(UTC).date()
        async with self.database.transaction(immediate=True) as conn:
            await self._ensure_row(conn, account_key, day)
            result = await conn.execute(
                update(_table)
                .where(
                    _table.c.account_key == account_key,
                    _table.c.day == day,
                    _table.c.used + calls <= self.daily_limit,
                )
                .values(used=_table.c.used + calls)
                .returning(_table.c.used)
            )
            used = result.scalar_one_or_none()
            if used is None:
                spent = await self._used(conn, account_key, day)
        if used is not None:
            return self.daily_limit - int(used)
        raise RetryableError(
            f"Klaviyo report budget used up until 00:00 UTC ({spent} of {self.daily_limit} "
            f"report calls used today, {calls} needed)",
            provider="klaviyo",
            retry_at=next_utc_midnight(now),
        )

    async def refund(self, account_key: str, calls: int, *, day: date | None = None) -> None:
        """Give back calls reserved on ``day`` (default today) that were not made after all."""
        if calls < 1:
            return
        day = day or self.today()
        async with self.database.transaction(immediate=True) as conn:
            await conn.execute(
                update(_table)
                .where(
                    _table.c.account_key == account_key,
                    _table.c.day == day,
                    _table.c.used >= calls,
                )
                .values(used=_table.c.used - calls)
            )

    async def used(self, account_key: str) -> int:
        """Report calls spent (or reserved) today."""
        async with self.database.read() as conn:
            return await self._used(conn, account_key, self.today())

    async def remaining(self, account_key: str) -> int:
        """Report calls still available today, for display."""
        return max(0, self.daily_limit - await self.used(account_key))

    async def _used(self, conn: AsyncConnection, account_key: str, day: date) -> int:
        result = await conn.execute(
            select(_table.c.used).where(_table.c.account_key == account_key, _table.c.day == day)
        )
        return int(result.scalar_one_or_none() or 0)

    async def _ensure_row(self, conn: AsyncConnection, account_key: str, day: date) -> None:
        values = {"account_key": account_key, "day": day, "used": 0}
        insert = insert_ignoring_conflicts(self.database.dialect, _table)
        await conn.execute(insert.values(**values))

"""Per-account fairness in the claim order, and the per-account cap on users' queued syncs.

**Fair claims.** Without it, equal priorities run oldest first, so an account that queues
1,500 syncs makes every other account wait behind all of them. The claim ranks the jobs it
may take (due, their store free, the best job of each store) by a *fair score*::

    priority + seconds waited / priority_aging_seconds
             − account_fairness_points × (jobs of its account running + jobs of its account
                                          ahead of it among these)

Within one account the order is exactly the old one (the penalty grows with the rank the old
order gives). Between accounts, an account with nothing running has its best job weighed at
its full priority, a busy one pays for each job it already has: at equal priority the
accounts take turns (round robin, weighted by the work under way), and a flood waits behind
everyone else's first job. Priorities and aging still hold across accounts, bounded by the
penalty: a user's request (100) still goes ahead of another account's scheduled refresh (0)
unless its own account has ten jobs or more under way (at the default 10 points). Nothing
starves: a waiting job's aging grows without bound, its penalty does not (it counts its
account's running jobs, at most the global limit, and the jobs ahead of it, which are served).
The price of keeping priorities across accounts: while a flooding account has fewer than
100 ÷ points jobs running (10), its users' syncs still out-rank other accounts' *scheduled*
refreshes, which then wait for the flood (at most ``max_queued_jobs_per_account`` jobs) unless
aging lifts them; other accounts' users' syncs never wait for it. A larger
``account_fairness_points`` trades priority for turns: at 50, a busy account's user sync
weighs no more than another account's scheduled refresh once two of its jobs run.

**Slots kept for other accounts.** Taking turns orders the waiting jobs, but a job that
arrives while every slot is busy still waits for one to free: about one sync's duration.
``max_running_jobs_per_account`` (0: off) caps how many of the global slots one account's jobs
hold, so the rest stay free for other accounts and their syncs start at once. It is not
work-conserving: while only one account has work, the slots above its cap stay idle; a
multi-tenant deployment that promises every tenant a quick start sets it (e.g. the global
limit minus one or two), a single-tenant one leaves it off.

**The cap.** :func:`under_cap` is a condition for the enqueue's INSERT: the store's account
has fewer than ``max_queued_jobs_per_account`` users' jobs queued or running. It is checked in
the same statement as the insert. Scheduled and webhook refreshes are not counted and never
refused: their number is bounded by stores × periods (one active job per store and period, and
stores per account are capped too), and refusing them would lose freshness; the scheduler's
bulk path, ``JobQueue.enqueue_many``, is not capped for the same reason. A request for a period
already queued gets that job, never a refusal. The cap is exact: SQLite runs one writer at a
time, and on PostgreSQL a user's enqueue runs in a transaction that first takes the account's
advisory lock (:data:`ACCOUNT_LOCK`), so each counts the jobs of the one before; in one
process, the account's enqueues wait for that lock without holding a connection
(:class:`AccountTurns`). That costs a user's enqueue on PostgreSQL three more round trips
(BEGIN, the lock, COMMIT); ``max_queued_jobs_per_account = 0`` removes the cap and its cost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, literal, select, text

from storesync.errors import LimitExceededError
from storesync.queue.jobs import JobStatus, Reason
from storesync.queue.transitions import JOBS
from storesync.storage.engine import Database
from storesync.storage.models import Store, table_of

STORES = table_of(Store)
_ACTIVE = (JobStatus.QUEUED.value, JobStatus.PROCESSING.value)

#: Seconds a caller refused by the cap is told to wait (``Retry-After``): syncs take tens of
#: seconds, so some of the account's will have finished by then.
QUEUE_FULL_RETRY_SECONDS = 30.0


#: PostgreSQL: the advisory lock that orders the enqueues of one account's users (parameter
#: ``store_id``), so that each counts the others' jobs (see ``JobQueue._enqueue_connection``).
#: Its two keys are a constant unique to storesync and the account id (cut to 31 bits: two
#: accounts sharing a lock only wait for each other).
ACCOUNT_LOCK = text(
    "SELECT pg_advisory_xact_lock(:namespace, CAST(account_id % 2147483647 AS integer)) "
    "FROM stores WHERE id = :store_id"
).bindparams(namespace=0x5702E5E)


class AccountTurns:
    """In this process, one enqueue of a user's job per account at a time.

    The account's advisory lock orders its enqueues across processes, but a request waiting for
    it holds a pooled connection meanwhile: a flood of one account's requests would hold the
    pool that every other account's requests need. Waiting here first costs no connection, so
    a flood queues behind itself only. Stores never change account, so the store → account
    map is read once per store.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._accounts: dict[int, int] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def turn(self, store_id: int) -> AsyncIterator[None]:
        """Wait for the turn of the account of ``store_id`` (none needed for a missing store:
        the enqueue then fails on the foreign key)."""
        account = await self._account_of(store_id)
        if account is None:
            yield
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a lock belongs to the event loop that first waits on it
            self._loop, self._locks = loop, {}
        async with self._locks.setdefault(account, asyncio.Lock()):
            yield

    async def _account_of(self, store_id: int) -> int | None:
        known = self._accounts.get(store_id)
        if known is None:
            async with self.database.read() as conn:
                found = await conn.scalar(
                    select(STORES.c.account_id).where(STORES.c.id == store_id)
                )
            if found is None:
                return None
            known = self._accounts[store_id] = int(found)
        return known


def fair_order(candidates: Any, points: float, max_running: int = 0) -> Select[Any]:
    """The ids of ``candidates`` (a subquery with ``id``, ``store_id``, ``effective`` and
    ``queued_at``, at most one job per store) best first by the fair score above; with
    ``max_running``, none that would give its account more than that many jobs running."""
    with_account = (
        select(candidates, STORES.c.account_id)
        .join(STORES, STORES.c.id == candidates.c.store_id)
        .subquery()
    )
    ranked = select(
        with_account,
        func.row_number()
        .over(
            partition_by=with_account.c.account_id,
            order_by=(
                with_account.c.effective.desc(),
                with_account.c.queued_at,
                with_account.c.id,
            ),
        )
        .label("account_rank"),
    ).subquery()
    running = (
        select(STORES.c.account_id, func.count().label("running"))
        .select_from(JOBS.join(STORES, STORES.c.id == JOBS.c.store_id))
        .where(JOBS.c.status == JobStatus.PROCESSING.value)
        .group_by(STORES.c.account_id)
        .subquery()
    )
    load = func.coalesce(running.c.running, 0) + ranked.c.account_rank - 1
    fair = ranked.c.effective - literal(points) * load
    chosen = (
        select(ranked.c.id)
        .select_from(ranked.outerjoin(running, running.c.account_id == ranked.c.account_id))
        .order_by(fair.desc(), ranked.c.effective.desc(), ranked.c.queued_at, ranked.c.id)
    )
    return chosen.where(load < max_running) if max_running > 0 else chosen


def _users_active(account: Any, cap: int) -> Any:
    """How many users' jobs ``account`` has queued or running, counting at most ``cap``
    (the count stops there: an enqueue costs the same whatever the backlog)."""
    jobs = (
        select(literal(1).label("one"))
        .select_from(JOBS.join(STORES, STORES.c.id == JOBS.c.store_id))
        .where(
            STORES.c.account_id == account,
            JOBS.c.status.in_(_ACTIVE),
            JOBS.c.reason == Reason.USER.value,
        )
        .limit(cap)
        .subquery()
    )
    return select(func.count()).select_from(jobs).scalar_subquery()


def under_cap(store_id: Any, reason: Any, cap: int) -> Any:
    """The enqueue's condition: a job that is not a user's, or an account under the cap."""
    account = select(STORES.c.account_id).where(STORES.c.id == store_id).scalar_subquery()
    return (reason != Reason.USER.value) | (_users_active(account, cap) < cap)


def users_active_statement(cap: int) -> Select[Any]:
    """How many users' jobs the account of store ``store_id`` (a parameter) has active."""
    store_id = bindparam("store_id", type_=Integer)
    account = select(STORES.c.account_id).where(STORES.c.id == store_id).scalar_subquery()
    return select(_users_active(account, cap))


def queue_full(cap: int) -> LimitExceededError:
    """The error for an account at its cap."""
    return LimitExceededError(
        f"this account already has {cap} syncs queued or running (the limit, "
        "STORESYNC_MAX_QUEUED_JOBS_PER_ACCOUNT); wait for some to finish and try again",
        retry_after=QUEUE_FULL_RETRY_SECONDS,
    )

"""Group commit: everything the engine emitted since the last transaction goes into the next one.

Commands are applied in memory at once and answered only after `barrier()` resolves, i.e. after
the transaction holding their effects (and everything emitted before them) has committed. While
one transaction is in flight, new commands pile up and share the next one, so durability costs
one round trip per batch, not per command.

If a write fails, memory and database may have diverged: the committer fails the callers of the
batch, refuses commands, has memory rebuilt from the database (where nothing unacknowledged can
have been promised), then resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
from exness.trading.v1 import trading_pb2 as pb
from psycopg_pool import AsyncConnectionPool

from kit.backoff import Backoff
from services.trading import metrics
from services.trading.codec import event_pb
from services.trading.engine import Engine
from services.trading.model import AccountView, Handoff, Quote, RolloverMark
from services.trading.tables import (
    ACCOUNTS,
    JOURNAL,
    LEDGER,
    ORDERS,
    POSITIONS,
    ROLLOVERS,
    TRADES,
    WRITE_ORDER,
    JournalEntry,
    Table,
)
from services.trading.tracing import CommandTraces, CommitSpans

log = logging.getLogger(__name__)

# Under concurrent load the writer lets commands gather this long before it drains (as
# PostgreSQL's commit_delay): fewer, bigger transactions cost the database and this process less
# per command (64 clients: ~15-20 orders per commit instead of ~9, p50 latency unchanged). A lone
# caller (the last transaction had one caller waiting for it) is not kept waiting.
GATHER_S = 0.005

# A connection blip (a restarted backend, a failover) is repaired by retrying the batch on a
# new connection; past this window the database counts as down and the batch as failed, so
# callers hear UNAVAILABLE soon instead of waiting for their deadline.
RETRY_WINDOW_S = 1.0


class CommitFailed(Exception):
    """The transaction holding a caller's effects failed (or its outcome is unknown) and memory is
    being rebuilt from the database: the command may or may not have taken effect. A retry (with
    the same client_order_id) is answered from what was committed."""


class Committer:
    """Writes what the engine emits in group commits. A failed write (anything but a connection
    blip that a retry within RETRY_WINDOW_S repairs) fails every waiting caller with
    CommitFailed, stops accepting commands (`accepting`), has memory rebuilt from PostgreSQL
    (`rebuild`), then accepts again: nothing is ever answered from state that was not committed."""

    def __init__(
        self,
        engine: Engine,
        pool: AsyncConnectionPool,
        *,
        rebuild: Callable[[], Awaitable[None]],
        on_committed: Sequence[Callable[[list[pb.AccountEvent]], None]] = (),
        traces: CommandTraces | None = None,
    ) -> None:
        self.engine = engine
        self.traces = traces or CommandTraces()
        self.pool = pool
        self.rebuild = rebuild
        self.on_committed = list(on_committed)
        self._wake = asyncio.Event()
        self._next: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight: asyncio.Future[None] | None = None
        self._recovering = False
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._callers = 0  # barrier() calls waiting for the next transaction
        self._last_callers = 0
        # The last transaction, for metrics: events it carried and seconds it took.
        self.last_batch_size = 0
        self.last_commit_s = 0.0

    @property
    def accepting(self) -> bool:
        """False from a failed write until memory is rebuilt: commands must not touch the
        engine meanwhile."""
        return not self._recovering

    async def barrier(self) -> None:
        """Returns when everything the engine has emitted so far is committed; raises
        CommitFailed if it never will be."""
        if self._recovering:
            raise CommitFailed("the engine is rebuilding its state after a failed write")
        if self.engine.has_unsaved():
            self._wake.set()
            self._callers += 1
            future = self._next
        elif self._in_flight is not None:
            future = self._in_flight
        else:
            return
        # Shielded: a caller that gives up (deadline, cancel) must not cancel the transaction
        # every other caller of the batch is waiting for.
        await asyncio.shield(future)

    def wake(self) -> None:
        """Ticks emit without a waiting caller: nudge the writer."""
        if self.engine.has_unsaved():
            self._wake.set()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self._release()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self._last_callers > 1:
                await asyncio.sleep(GATHER_S)
            self._wake.clear()
            handoff = self.engine.hand_over()
            self._last_callers, self._callers = self._callers, 0
            if not handoff.items:
                continue
            future, self._next = self._next, asyncio.get_running_loop().create_future()
            self._in_flight = future
            started = time.monotonic()
            spans = self.traces.start_commit(handoff.items)
            try:
                events = await self._write(handoff, spans)
            except Exception as exc:
                spans.end(exc)
                log.error("group commit failed; rebuilding memory from the database", exc_info=exc)
                await self._recover(future)
                continue
            finally:
                self._in_flight = None
            self.last_batch_size, self.last_commit_s = len(events), time.monotonic() - started
            spans.end()
            future.set_result(None)
            metrics.observe_commit(self.last_batch_size, self.last_commit_s, events)
            for listener in self.on_committed:
                try:
                    listener(events)
                except Exception:
                    log.exception("commit listener failed")

    async def _recover(self, failed: asyncio.Future[None]) -> None:
        """Fail-stop, then restart from the database: callers of the failed batch and of the
        next one (commands applied on top of the lost state) get CommitFailed."""
        self._recovering = True
        for future in (failed, self._next):
            future.set_exception(CommitFailed("the transaction holding this call failed"))
            future.exception()  # retrieved: each caller sees it through its shield
        self._next = asyncio.get_running_loop().create_future()
        self._callers = self._last_callers = 0
        await self._release(broken=True)
        backoff = Backoff(base_s=0.05, cap_s=2.0)
        while True:
            try:
                await self.rebuild()
                break
            except Exception as exc:
                log.warning("rebuild from the database failed; retrying", extra={"error": str(exc)})
                await backoff.sleep()
        self.engine.hand_over()  # the rebuilt engine starts with nothing to write
        self._recovering = False
        log.warning("memory rebuilt from the database; accepting commands again")

    async def _write(self, handoff: Handoff, spans: CommitSpans) -> list[pb.AccountEvent]:
        rows = _Rows(self.engine.shard_id, self.engine.quote, handoff, spans)
        statements = rows.statements()
        backoff = Backoff(base_s=0.05, cap_s=0.5)
        retry = False
        give_up = time.monotonic() + RETRY_WINDOW_S
        while True:
            try:
                conn = await self._connection(max(0.1, give_up - time.monotonic()))
                if (
                    retry
                    and rows.last_sequence
                    and await _already_committed(conn, self.engine.shard_id, rows.last_sequence)
                ):
                    return rows.protos  # the commit went through before the link broke
                # One round trip: the statements and the COMMIT go out together; the pipeline
                # returns only once the server has answered all of them.
                async with conn.pipeline(), conn.transaction():
                    for statement, params in statements:
                        await conn.execute(statement, params)
                return rows.protos
            except psycopg.OperationalError as exc:
                await self._release(broken=True)
                delay = backoff.next_delay()
                if time.monotonic() + delay > give_up:
                    raise
                log.warning("database unavailable, retrying the batch", extra={"error": str(exc)})
                retry = True
                await asyncio.sleep(delay)

    async def _connection(self, timeout_s: float) -> psycopg.AsyncConnection[Any]:
        """The writer keeps one connection across batches: taking it from the pool each time
        would cost a health-check round trip per commit. Waiting for a new one is bounded (the
        pool's own timeout is far longer), so a database that is down fails the batch soon."""
        if self._conn is None or self._conn.closed:
            self._conn = await self.pool.getconn(timeout=timeout_s)
        return self._conn

    async def _release(self, *, broken: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if broken:
                await conn.close()  # the pool replaces a closed connection
            await self.pool.putconn(conn)


async def _already_committed(conn: Any, shard: int, sequence: int) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM trading_journal WHERE shard = %s AND sequence = %s", (shard, sequence)
    )
    found = await cur.fetchone() is not None
    await conn.rollback()
    return found


class _Rows:
    """One batch as table rows; the last state of each account/order/position wins."""

    def __init__(
        self,
        shard: int,
        quote_of: Callable[[str, str], Quote | None],
        handoff: Handoff,
        spans: CommitSpans,
    ) -> None:
        accounts: dict[int, tuple[Any, ...]] = {}
        orders: dict[int, tuple[Any, ...]] = {}
        positions: dict[int, tuple[Any, ...]] = {}
        trades: list[tuple[Any, ...]] = []
        ledger: list[tuple[Any, ...]] = []
        journal: list[tuple[Any, ...]] = []
        self.protos: list[pb.AccountEvent] = []
        self.last_sequence = 0
        account_messages: dict[int, pb.Account] = {}
        rollovers: dict[int, tuple[Any, ...]] = {}
        for item in handoff.items:
            if isinstance(item, AccountView):
                accounts[item.account_id] = ACCOUNTS.row(item)
                continue
            if isinstance(item, RolloverMark):
                rollovers[item.shard] = ROLLOVERS.row(item)
                continue
            view = handoff.views[item.account_id]
            accounts[view.account_id] = ACCOUNTS.row(view)
            if item.order is not None:
                orders[item.order.order_id] = ORDERS.row(item.order)
            if item.position is not None:
                positions[item.position.position_id] = POSITIONS.row(item.position)
            if item.trade is not None:
                trades.append(TRADES.row(item.trade))
            if item.ledger is not None:
                ledger.append(LEDGER.row(item.ledger))
            message = event_pb(item, view, quote_of, account_messages)
            self.protos.append(message)
            entry = JournalEntry(
                shard,
                item.sequence,
                view.account_id,
                int(item.type),
                message.SerializeToString(),
                item.time,
                spans.traceparent_of(item.sequence),
            )
            journal.append(JOURNAL.row(entry))
            self.last_sequence = item.sequence
        self.rows: dict[Table, list[tuple[Any, ...]]] = {
            ACCOUNTS: list(accounts.values()),
            ORDERS: list(orders.values()),
            POSITIONS: list(positions.values()),
            TRADES: trades,
            LEDGER: ledger,
            JOURNAL: journal,
            ROLLOVERS: list(rollovers.values()),
        }

    def statements(self) -> list[tuple[str, list[str]]]:
        """(statement, column arrays) for each table with rows, in write order."""
        return [
            (table.insert_sql, table.params(self.rows[table]))
            for table in WRITE_ORDER
            if self.rows[table]
        ]

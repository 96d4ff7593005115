"""Group commit: everything the engine emitted since the last transaction goes into the next one.

Commands are applied in memory at once and answered only after `barrier()` resolves, i.e. after
the transaction holding their effects (and everything emitted before them) has committed. While
one transaction is in flight, new commands pile up and share the next one, so durability costs
one round trip per batch, not per command.

If a write fails for a reason other than a lost connection, memory and database have diverged:
the committer stops the process (fail-stop) and the restart rebuilds memory from the database,
where nothing unacknowledged can have been promised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from exness.trading.v1 import trading_pb2 as pb
from psycopg_pool import AsyncConnectionPool

from services.trading import pgarrays
from services.trading.codec import event_pb
from services.trading.engine import Engine
from services.trading.model import AccountView, Event
from services.trading.tracing import CommandTraces, CommitSpans

log = logging.getLogger(__name__)

# Under concurrent load the writer lets commands gather this long before it drains (as
# PostgreSQL's commit_delay): fewer, bigger transactions cost the database and this process less
# per command (64 clients: ~15-20 orders per commit instead of ~9, p50 latency unchanged). A lone
# caller (the last transaction had one caller waiting for it) is not kept waiting.
GATHER_S = 0.005

# One statement per table per batch: the rows travel as one array per column and are expanded by
# unnest(), so a batch of any size costs the server a handful of statements, not one per row.
# The rows of accounts, orders and positions are unique per batch (keyed by id in _Rows), as
# ON CONFLICT DO UPDATE requires. Each array travels as one text literal (see pgarrays).
_UPSERT_ACCOUNTS = (
    "INSERT INTO trading_accounts (account_id, user_id, shard, balance, leverage, margin_call,"
    " created_at, updated_at) SELECT * FROM unnest(%s::bigint[], %s::text[], %s::int[],"
    " %s::numeric[], %s::int[], %s::bool[], %s::timestamptz[], %s::timestamptz[])"
    " ON CONFLICT (account_id) DO UPDATE SET balance = excluded.balance,"
    " leverage = excluded.leverage, margin_call = excluded.margin_call,"
    " updated_at = excluded.updated_at"
)
_UPSERT_ORDERS = (
    "INSERT INTO trading_orders (order_id, account_id, client_order_id, fingerprint, symbol,"
    " side, type, status, volume, price, stop_loss, take_profit, leverage, fill_price,"
    " position_id, reject_reason, created_at, updated_at, expire_at)"
    " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[],"
    " %s::smallint[], %s::smallint[], %s::smallint[], %s::numeric[], %s::numeric[],"
    " %s::numeric[], %s::numeric[], %s::int[], %s::numeric[], %s::bigint[], %s::text[],"
    " %s::timestamptz[], %s::timestamptz[], %s::timestamptz[])"
    " ON CONFLICT (order_id) DO UPDATE SET status = excluded.status,"
    " fill_price = excluded.fill_price, position_id = excluded.position_id,"
    " reject_reason = excluded.reject_reason, updated_at = excluded.updated_at"
)
_UPSERT_POSITIONS = (
    "INSERT INTO trading_positions (position_id, account_id, order_id, symbol, side, volume,"
    " open_price, stop_loss, take_profit, leverage, margin, opened_at, closed_at)"
    " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[],"
    " %s::smallint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::int[],"
    " %s::numeric[], %s::timestamptz[], %s::timestamptz[])"
    " ON CONFLICT (position_id) DO UPDATE SET volume = excluded.volume,"
    " stop_loss = excluded.stop_loss, take_profit = excluded.take_profit,"
    " margin = excluded.margin, closed_at = excluded.closed_at"
)
_INSERT_TRADES = (
    "INSERT INTO trading_trades (trade_id, account_id, position_id, symbol, side, volume,"
    " open_price, close_price, realized_pnl, close_reason, opened_at, closed_at, close_note)"
    " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[],"
    " %s::smallint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[],"
    " %s::smallint[], %s::timestamptz[], %s::timestamptz[], %s::text[])"
)
_INSERT_LEDGER = (
    "INSERT INTO trading_ledger (entry_id, account_id, kind, amount, balance_after,"
    " reference_id, created_at) SELECT * FROM unnest(%s::bigint[], %s::bigint[],"
    " %s::smallint[], %s::numeric[], %s::numeric[], %s::text[], %s::timestamptz[])"
)
_INSERT_JOURNAL = (
    "INSERT INTO trading_journal (shard, sequence, account_id, event_type, payload, created_at,"
    " traceparent) SELECT * FROM unnest(%s::int[], %s::bigint[], %s::bigint[], %s::smallint[],"
    " %s::bytea[], %s::timestamptz[], %s::text[])"
)


# Per statement, the encoder of each column (in the order of the statement's parameters).
_I, _N, _T, _S, _B, _X = (
    pgarrays.ints,
    pgarrays.numerics,
    pgarrays.timestamps,
    pgarrays.texts,
    pgarrays.bools,
    pgarrays.byteas,
)
_ENCODERS: dict[str, tuple[Callable[[Any], str], ...]] = {
    _UPSERT_ACCOUNTS: (_I, _S, _I, _N, _I, _B, _T, _T),
    _UPSERT_ORDERS: (_I, _I, _S, _S, _S, _I, _I, _I, _N, _N, _N, _N, _I, _N, _I, _S, _T, _T, _T),
    _UPSERT_POSITIONS: (_I, _I, _I, _S, _I, _N, _N, _N, _N, _I, _N, _T, _T),
    _INSERT_TRADES: (_I, _I, _I, _S, _I, _N, _N, _N, _N, _I, _T, _T, _S),
    _INSERT_LEDGER: (_I, _I, _I, _N, _N, _S, _T),
    _INSERT_JOURNAL: (_I, _I, _I, _I, _X, _T, _S),
}


def _params(statement: str, rows: Sequence[tuple[Any, ...]]) -> list[str]:
    """Rows -> one array literal per column (the parameters of `statement`)."""
    return [
        encode(column)
        for encode, column in zip(_ENCODERS[statement], zip(*rows, strict=True), strict=True)
    ]


class Committer:
    def __init__(
        self,
        engine: Engine,
        pool: AsyncConnectionPool,
        *,
        on_committed: Sequence[Callable[[list[pb.AccountEvent]], None]] = (),
        on_fatal: Callable[[BaseException], None] | None = None,
        traces: CommandTraces | None = None,
    ) -> None:
        self.engine = engine
        self.traces = traces or CommandTraces()
        self.pool = pool
        self.on_committed = list(on_committed)
        self.on_fatal = on_fatal
        self._wake = asyncio.Event()
        self._next: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight: asyncio.Future[None] | None = None
        self._failed: BaseException | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._callers = 0  # barrier() calls waiting for the next transaction
        self._last_callers = 0

    def barrier(self) -> asyncio.Future[None]:
        """Resolves when everything the engine has emitted so far is committed."""
        if self._failed is not None:
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(RuntimeError("the engine stopped: state could not be saved"))
            return failed
        if self.engine.outbox:
            self._wake.set()
            self._callers += 1
            return self._next
        if self._in_flight is not None:
            return self._in_flight
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def wake(self) -> None:
        """Ticks emit without a waiting caller: nudge the writer."""
        if self.engine.outbox:
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
            items = self.engine.drain()
            self._last_callers, self._callers = self._callers, 0
            if not items:
                continue
            future, self._next = self._next, asyncio.get_running_loop().create_future()
            self._in_flight = future
            spans = self.traces.start_commit(items)
            try:
                events = await self._write(items, spans)
            except BaseException as exc:
                spans.end(exc)
                self._failed = exc
                future.set_exception(RuntimeError("the engine stopped: state could not be saved"))
                future.exception()  # retrieved: callers see their own copy of the failure
                self._next.set_exception(RuntimeError("the engine stopped"))
                self._next.exception()
                log.critical("group commit failed; stopping", exc_info=exc)
                if self.on_fatal is not None and not isinstance(exc, asyncio.CancelledError):
                    self.on_fatal(exc)
                raise
            finally:
                self._in_flight = None
            spans.end()
            future.set_result(None)
            for listener in self.on_committed:
                try:
                    listener(events)
                except Exception:
                    log.exception("commit listener failed")

    async def _write(
        self, items: list[Event | AccountView], spans: CommitSpans
    ) -> list[pb.AccountEvent]:
        rows = _Rows(self.engine, items, spans)
        statements = rows.statements()
        delay = 0.05
        retry = False
        while True:
            try:
                conn = await self._connection()
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
                log.warning("database unavailable, retrying the batch", extra={"error": str(exc)})
                await self._release(broken=True)
                retry = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        """The writer keeps one connection across batches: taking it from the pool each time
        would cost a health-check round trip per commit."""
        if self._conn is None or self._conn.closed:
            self._conn = await self.pool.getconn()
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
        self, engine: Engine, items: list[Event | AccountView], spans: CommitSpans
    ) -> None:
        account_rows: dict[int, tuple[Any, ...]] = {}
        self.orders: dict[int, tuple[Any, ...]] = {}
        self.positions: dict[int, tuple[Any, ...]] = {}
        self.trades: list[tuple[Any, ...]] = []
        self.ledger: list[tuple[Any, ...]] = []
        self.journal: list[tuple[Any, ...]] = []
        self.protos: list[pb.AccountEvent] = []
        self.last_sequence = 0
        shard = engine.shard_id
        quotes = engine.quotes
        account_messages: dict[int, pb.Account] = {}
        for item in items:
            if isinstance(item, AccountView):
                account_rows[item.account_id] = _account_row(item)
                continue
            view = item.account
            assert view is not None
            account_rows[view.account_id] = _account_row(view)
            if (o := item.order) is not None:
                self.orders[o.order_id] = (
                    o.order_id,
                    o.account_id,
                    o.client_order_id or None,
                    o.fingerprint,
                    o.symbol,
                    int(o.side),
                    int(o.type),
                    int(o.status),
                    o.volume,
                    o.price,
                    o.stop_loss,
                    o.take_profit,
                    o.leverage,
                    o.fill_price,
                    o.position_id,
                    o.reject_reason,
                    o.created_at,
                    o.updated_at,
                    o.expire_at,
                )
            if (p := item.position) is not None:
                self.positions[p.position_id] = (
                    p.position_id,
                    p.account_id,
                    p.order_id,
                    p.symbol,
                    int(p.side),
                    p.volume,
                    p.open_price,
                    p.stop_loss,
                    p.take_profit,
                    p.leverage,
                    p.margin,
                    p.opened_at,
                    p.closed_at,
                )
            if (t := item.trade) is not None:
                self.trades.append(
                    (
                        t.trade_id,
                        t.account_id,
                        t.position_id,
                        t.symbol,
                        int(t.side),
                        t.volume,
                        t.open_price,
                        t.close_price,
                        t.realized_pnl,
                        int(t.close_reason),
                        t.opened_at,
                        t.closed_at,
                        t.note,
                    )
                )
            if (e := item.ledger) is not None:
                self.ledger.append(
                    (
                        e.entry_id,
                        e.account_id,
                        int(e.kind),
                        e.amount,
                        e.balance_after,
                        e.reference_id,
                        e.created_at,
                    )
                )
            message = event_pb(item, quotes, account_messages)
            self.protos.append(message)
            self.journal.append(
                (
                    shard,
                    item.sequence,
                    view.account_id,
                    int(item.type),
                    message.SerializeToString(),
                    item.time,
                    spans.traceparent_of(item.sequence),
                )
            )
            self.last_sequence = item.sequence
        # Accounts first: everything else references them.
        self.accounts = list(account_rows.values())

    def statements(self) -> list[tuple[str, list[str]]]:
        """(statement, column arrays) for each table with rows, accounts first."""
        return [
            (statement, _params(statement, rows))
            for statement, rows in (
                (_UPSERT_ACCOUNTS, self.accounts),
                (_UPSERT_ORDERS, list(self.orders.values())),
                (_UPSERT_POSITIONS, list(self.positions.values())),
                (_INSERT_TRADES, self.trades),
                (_INSERT_LEDGER, self.ledger),
                (_INSERT_JOURNAL, self.journal),
            )
            if rows
        ]


def _account_row(view: AccountView) -> tuple[Any, ...]:
    return (
        view.account_id,
        view.user_id,
        view.shard,
        view.balance,
        view.leverage,
        view.margin_call,
        view.created_at,
        view.updated_at,
    )

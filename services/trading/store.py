"""PostgreSQL side of the engine: instruments, rebuilding the engine's memory on start, and the
read queries that do not belong in memory (closed orders, trades)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg_pool import AsyncConnectionPool

from kit.data.account_types import load_account_types
from kit.data.instruments import load_instruments
from services.trading.engine import DEFAULT_MAX_PENDING_ORDERS, Engine
from services.trading.ids import shard_range
from services.trading.model import (
    Account,
    AccountKind,
    CloseReason,
    LedgerEntry,
    LedgerKind,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Trade,
)
from services.trading.tables import ACCOUNTS, LEDGER, ORDERS, POSITIONS, TRADES


def order_from_row(row: Sequence[Any]) -> Order:
    """An order read back with ORDERS.select_list."""
    f = ORDERS.read(row)
    return Order(
        f["order_id"],
        f["account_id"],
        f["symbol"],
        Side(f["side"]),
        OrderType(f["type"]),
        f["volume"],
        f["leverage"],
        f["created_at"],
        client_order_id=f["client_order_id"] or "",
        fingerprint=f["fingerprint"],
        price=f["price"],
        stop_loss=f["stop_loss"],
        take_profit=f["take_profit"],
        expire_at=f["expire_at"],
        status=OrderStatus(f["status"]),
        fill_price=f["fill_price"],
        position_id=f["position_id"],
        reject_reason=f["reject_reason"],
        updated_at=f["updated_at"],
        trailing_stop=f["trailing_stop"],
    )


def position_from_row(row: Sequence[Any], contract_size: Decimal) -> Position:
    """A position read back with POSITIONS.select_list."""
    f = POSITIONS.read(row)
    return Position(
        f["position_id"],
        f["account_id"],
        f["order_id"],
        f["symbol"],
        Side(f["side"]),
        f["volume"],
        f["open_price"],
        f["leverage"],
        f["margin"],
        f["volume"] * contract_size,
        f["opened_at"],
        f["stop_loss"],
        f["take_profit"],
        f["closed_at"],
        f["commission"],
        trailing_stop=f["trailing_stop"],
        swap=f["swap"],
    )


def trade_from_row(row: Sequence[Any]) -> Trade:
    """A trade read back with TRADES.select_list."""
    f = TRADES.read(row)
    f["side"] = Side(f["side"])
    f["close_reason"] = CloseReason(f["close_reason"])
    return Trade(**f)


def account_from_row(row: Sequence[Any]) -> Account:
    """An account read back with ACCOUNTS.select_list."""
    f = ACCOUNTS.read(row)
    return Account(
        f["account_id"],
        f["user_id"],
        f["shard"],
        f["leverage"],
        f["balance"],
        f["created_at"],
        f["margin_call"],
        f["updated_at"],
        account_type=f["account_type"],
        kind=AccountKind(f["kind"]),
        swap_free=f["swap_free"],
        is_default=f["is_default"],
    )


async def load_engine(
    pool: AsyncConnectionPool,
    *,
    shard_id: int,
    max_quote_age: timedelta,
    max_pending_orders: int = DEFAULT_MAX_PENDING_ORDERS,
    trading_sessions: bool = True,
    charge_swaps: bool = True,
) -> Engine:
    """An engine holding this shard's accounts, pending orders, open positions and
    idempotency keys exactly as last committed."""
    instruments = await load_instruments(pool)
    engine = Engine(
        instruments,
        account_types=await load_account_types(pool),
        shard_id=shard_id,
        max_quote_age=max_quote_age,
        max_pending_orders=max_pending_orders,
        trading_sessions=trading_sessions,
        charge_swaps=charge_swaps,
    )
    low, high = shard_range(shard_id)
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(
            f"SELECT {ACCOUNTS.select_list} FROM trading_accounts WHERE shard = %s", (shard_id,)
        )
        async for row in cur:
            engine.restore_account(account_from_row(row))
        await cur.execute(
            f"SELECT {ORDERS.select_list} FROM trading_orders WHERE account_id IN"
            " (SELECT account_id FROM trading_accounts WHERE shard = %s)"
            " AND (status = 1 OR client_order_id IS NOT NULL)",
            (shard_id,),
        )
        async for row in cur:
            engine.restore_order(order_from_row(row))
        await cur.execute(
            f"SELECT {POSITIONS.select_list} FROM trading_positions WHERE account_id IN"
            " (SELECT account_id FROM trading_accounts WHERE shard = %s)"
            " AND closed_at IS NULL ORDER BY position_id",
            (shard_id,),
        )
        async for row in cur:
            symbol = row[POSITIONS.names.index("symbol")]
            engine.restore_position(position_from_row(row, instruments[symbol].contract_size))
        maxima = []
        for table, column in (
            ("trading_accounts", "account_id"),
            ("trading_orders", "order_id"),
            ("trading_positions", "position_id"),
            ("trading_trades", "trade_id"),
            ("trading_ledger", "entry_id"),
        ):
            await cur.execute(
                f"SELECT coalesce(max({column}), 0) FROM {table}"
                f" WHERE {column} >= %s AND {column} < %s",
                (low, high),
            )
            maxima.append(int((await cur.fetchone() or (0,))[0]))
        await cur.execute(
            "SELECT last_rollover FROM trading_rollovers WHERE shard = %s", (shard_id,)
        )
        rollover = await cur.fetchone()
        if rollover is not None:
            engine.restore_rollover(rollover[0])
        await cur.execute(
            "SELECT coalesce(max(sequence), 0) FROM trading_journal WHERE shard = %s", (shard_id,)
        )
        sequence = int((await cur.fetchone() or (0,))[0])
    engine.restore_counters(
        sequence=sequence,
        account=maxima[0],
        order=maxima[1],
        position=maxima[2],
        trade=maxima[3],
        ledger=maxima[4],
    )
    return engine


async def find_order(pool: AsyncConnectionPool, account_id: int, order_id: int) -> Order | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {ORDERS.select_list} FROM trading_orders WHERE order_id = %s AND account_id = %s",
            (order_id, account_id),
        )
        row = await cur.fetchone()
    return order_from_row(row) if row else None


async def list_trades(
    pool: AsyncConnectionPool,
    account_id: int,
    *,
    before_id: int | None,
    limit: int,
    symbol: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Trade]:
    """Newest first; keyset pagination on trade_id; closed within [start, end) when given."""
    query = f"SELECT {TRADES.select_list} FROM trading_trades WHERE account_id = %s"
    params: list[Any] = [account_id]
    if before_id is not None:
        query += " AND trade_id < %s"
        params.append(before_id)
    if symbol:
        query += " AND symbol = %s"
        params.append(symbol)
    query, params = _within(query, params, "closed_at", start, end)
    query += " ORDER BY trade_id DESC LIMIT %s"
    params.append(limit)
    async with pool.connection() as conn:
        cur = await conn.execute(query, params)
        rows = await cur.fetchall()
    return [trade_from_row(row) for row in rows]


def _within(
    query: str, params: list[Any], column: str, start: datetime | None, end: datetime | None
) -> tuple[str, list[Any]]:
    """Adds `start <= column < end` for the bounds given."""
    if start is not None:
        query += f" AND {column} >= %s"
        params.append(start)
    if end is not None:
        query += f" AND {column} < %s"
        params.append(end)
    return query, params


async def list_ledger(
    pool: AsyncConnectionPool,
    account_id: int,
    *,
    before_id: int | None,
    limit: int,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[LedgerEntry]:
    """The account's balance operations newest first; keyset pagination on entry_id (ids grow
    with time within a shard, and an account never leaves its shard)."""
    query = f"SELECT {LEDGER.select_list} FROM trading_ledger WHERE account_id = %s"
    params: list[Any] = [account_id]
    if before_id is not None:
        query += " AND entry_id < %s"
        params.append(before_id)
    query, params = _within(query, params, "created_at", start, end)
    query += " ORDER BY entry_id DESC LIMIT %s"
    params.append(limit)
    async with pool.connection() as conn:
        cur = await conn.execute(query, params)
        rows = await cur.fetchall()
    entries = []
    for row in rows:
        f = LEDGER.read(row)
        f["kind"] = LedgerKind(f["kind"])
        entries.append(LedgerEntry(**f))
    return entries

"""PostgreSQL side of the engine: instruments, rebuilding the engine's memory on start, and the
read queries that do not belong in memory (closed orders, trades)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from psycopg_pool import AsyncConnectionPool

from kit.data.instruments import load_instruments
from services.trading.engine import SHARD_ID_SHIFT, Engine
from services.trading.model import (
    Account,
    CloseReason,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Trade,
)

_ORDER_COLUMNS = (
    "order_id, account_id, symbol, side, type, volume, leverage, created_at, client_order_id,"
    " fingerprint, price, stop_loss, take_profit, expire_at, status, fill_price, position_id,"
    " reject_reason, updated_at"
)
_POSITION_COLUMNS = (
    "position_id, account_id, order_id, symbol, side, volume, open_price, leverage, margin,"
    " opened_at, stop_loss, take_profit, closed_at"
)
_TRADE_COLUMNS = (
    "trade_id, account_id, position_id, symbol, side, volume, open_price, close_price,"
    " realized_pnl, close_reason, opened_at, closed_at"
)


def order_from_row(row: Any) -> Order:
    (
        order_id,
        account_id,
        symbol,
        side,
        type_,
        volume,
        leverage,
        created_at,
        client_order_id,
        fingerprint,
        price,
        stop_loss,
        take_profit,
        expire_at,
        status,
        fill_price,
        position_id,
        reject_reason,
        updated_at,
    ) = row
    return Order(
        order_id,
        account_id,
        symbol,
        Side(side),
        OrderType(type_),
        volume,
        leverage,
        created_at,
        client_order_id=client_order_id or "",
        fingerprint=fingerprint,
        price=price,
        stop_loss=stop_loss,
        take_profit=take_profit,
        expire_at=expire_at,
        status=OrderStatus(status),
        fill_price=fill_price,
        position_id=position_id,
        reject_reason=reject_reason,
        updated_at=updated_at,
    )


def position_from_row(row: Any, contract_size: Decimal) -> Position:
    (
        position_id,
        account_id,
        order_id,
        symbol,
        side,
        volume,
        open_price,
        leverage,
        margin,
        opened_at,
        stop_loss,
        take_profit,
        closed_at,
    ) = row
    return Position(
        position_id,
        account_id,
        order_id,
        symbol,
        Side(side),
        volume,
        open_price,
        leverage,
        margin,
        volume * contract_size,
        opened_at,
        stop_loss,
        take_profit,
        closed_at,
    )


def trade_from_row(row: Any) -> Trade:
    (
        trade_id,
        account_id,
        position_id,
        symbol,
        side,
        volume,
        open_price,
        close_price,
        realized_pnl,
        close_reason,
        opened_at,
        closed_at,
    ) = row
    return Trade(
        trade_id,
        account_id,
        position_id,
        symbol,
        Side(side),
        volume,
        open_price,
        close_price,
        realized_pnl,
        CloseReason(close_reason),
        opened_at,
        closed_at,
    )


def _shard_range(shard: int) -> tuple[int, int]:
    return shard << SHARD_ID_SHIFT, (shard + 1) << SHARD_ID_SHIFT


async def load_engine(
    pool: AsyncConnectionPool, *, shard_id: int, max_quote_age: timedelta
) -> Engine:
    """An engine holding this shard's accounts, pending orders, open positions and
    idempotency keys exactly as last committed."""
    instruments = await load_instruments(pool)
    engine = Engine(instruments, shard_id=shard_id, max_quote_age=max_quote_age)
    low, high = _shard_range(shard_id)
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT account_id, user_id, shard, leverage, balance, created_at, margin_call,"
            " updated_at FROM trading_accounts WHERE shard = %s",
            (shard_id,),
        )
        async for row in cur:
            engine.restore_account(Account(*row))
        await cur.execute(
            f"SELECT {_ORDER_COLUMNS} FROM trading_orders WHERE account_id IN"
            " (SELECT account_id FROM trading_accounts WHERE shard = %s)"
            " AND (status = 1 OR client_order_id IS NOT NULL)",
            (shard_id,),
        )
        async for row in cur:
            engine.restore_order(order_from_row(row))
        await cur.execute(
            f"SELECT {_POSITION_COLUMNS} FROM trading_positions WHERE account_id IN"
            " (SELECT account_id FROM trading_accounts WHERE shard = %s)"
            " AND closed_at IS NULL ORDER BY position_id",
            (shard_id,),
        )
        async for row in cur:
            size = instruments[row[3]].contract_size
            engine.restore_position(position_from_row(row, size))
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
            f"SELECT {_ORDER_COLUMNS} FROM trading_orders WHERE order_id = %s AND account_id = %s",
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
) -> list[Trade]:
    """Newest first; keyset pagination on trade_id."""
    query = f"SELECT {_TRADE_COLUMNS} FROM trading_trades WHERE account_id = %s"
    params: list[Any] = [account_id]
    if before_id is not None:
        query += " AND trade_id < %s"
        params.append(before_id)
    if symbol:
        query += " AND symbol = %s"
        params.append(symbol)
    query += " ORDER BY trade_id DESC LIMIT %s"
    params.append(limit)
    async with pool.connection() as conn:
        cur = await conn.execute(query, params)
        rows = await cur.fetchall()
    return [trade_from_row(row) for row in rows]

"""The instruments table and its group's margin levels, as one row model for every service."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine imports the row model and must not load a database driver
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable symbol and its trading conditions (volumes in lots, levels in percent)."""

    symbol: str
    category: str  # crypto | forex | metal
    price_decimals: int
    contract_size: Decimal  # units of the base asset per lot
    volume_min: Decimal
    volume_step: Decimal
    volume_max: Decimal
    max_leverage: int
    margin_call_level: Decimal  # margin level (percent) of the margin call
    stop_out_level: Decimal  # margin level (percent) of the stop-out
    description: str = ""
    spread_markup: Decimal = Decimal(0)  # price units added to the exchange spread
    quote_currency: str = "USD"
    synthetic_start: Decimal = Decimal(0)  # the offline synthetic feed's start price
    synthetic_vol: Decimal = Decimal(0)  # and its per-second volatility (fraction)

    @property
    def tick_size(self) -> Decimal:
        """Smallest price increment, e.g. 0.01 for 2 price decimals."""
        return Decimal(1).scaleb(-self.price_decimals)


_SELECT = (
    "SELECT i.symbol, i.category, i.price_decimals, i.contract_size, i.volume_min,"
    " i.volume_step, i.volume_max, i.max_leverage, g.margin_call_level, g.stop_out_level,"
    " i.description, i.spread_markup, i.quote_currency, i.synthetic_start, i.synthetic_vol"
    " FROM instruments i JOIN instrument_groups g USING (category)"
    " WHERE i.enabled ORDER BY i.symbol"
)


async def load_instruments(pool: AsyncConnectionPool) -> dict[str, Instrument]:
    """Every enabled instrument by symbol."""
    async with pool.connection() as conn:
        return await read_instruments(conn)


async def read_instruments(conn: AsyncConnection[Any]) -> dict[str, Instrument]:
    """The same, on a connection of the caller's (a process that needs no pool)."""
    cur = await conn.execute(_SELECT)
    return {row[0]: Instrument(*row) for row in await cur.fetchall()}

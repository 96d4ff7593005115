"""The instruments table and its group's margin levels, as one row model for every service."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kit.data.sessions import TradingSession

if TYPE_CHECKING:  # the engine imports the row model and must not load a database driver
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool


class SwapType(enum.IntEnum):
    """How swap_long and swap_short are expressed (exness.market.v1.SwapType)."""

    NONE = 0
    POINTS = 1  # points (price steps) per lot per day
    PERCENT_PER_YEAR = 2  # percent per year of the position's value, 1/360 a day


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
    swap_type: SwapType = SwapType.NONE
    swap_long: Decimal = Decimal(0)  # per lot per day for a BUY, by swap_type; < 0: a charge
    swap_short: Decimal = Decimal(0)  # ... for a SELL
    triple_swap_weekday: int = 0  # ISO weekday whose rollover charges three days; 0: none
    # Weekly windows it trades in (UTC); empty: always open.
    sessions: tuple[TradingSession, ...] = ()

    @property
    def tick_size(self) -> Decimal:
        """Smallest price increment, e.g. 0.01 for 2 price decimals."""
        return Decimal(1).scaleb(-self.price_decimals)


_SELECT = (
    "SELECT i.symbol, i.category, i.price_decimals, i.contract_size, i.volume_min,"
    " i.volume_step, i.volume_max, i.max_leverage, g.margin_call_level, g.stop_out_level,"
    " i.description, i.spread_markup, i.quote_currency, i.synthetic_start, i.synthetic_vol,"
    " i.swap_type, i.swap_long, i.swap_short, i.triple_swap_weekday"
    " FROM instruments i JOIN instrument_groups g USING (category)"
    " WHERE i.enabled ORDER BY i.symbol"
)


_SESSIONS = (
    "SELECT symbol, open_weekday, open_minute, close_weekday, close_minute"
    " FROM instrument_sessions ORDER BY symbol, open_weekday, open_minute"
)


async def load_instruments(pool: AsyncConnectionPool) -> dict[str, Instrument]:
    """Every enabled instrument by symbol, with its trading sessions."""
    async with pool.connection() as conn:
        return await read_instruments(conn)


async def read_instruments(conn: AsyncConnection[Any]) -> dict[str, Instrument]:
    """The same, on a connection of the caller's (a process that needs no pool)."""
    cur = await conn.execute(_SELECT)
    rows = await cur.fetchall()
    cur = await conn.execute(_SESSIONS)
    session_rows = await cur.fetchall()
    instruments = {
        row[0]: replace(
            Instrument(*row[:15]),
            swap_type=SwapType(row[15]),
            swap_long=row[16],
            swap_short=row[17],
            triple_swap_weekday=row[18],
        )
        for row in rows
    }
    sessions: dict[str, list[TradingSession]] = {}
    for symbol, *window in session_rows:
        sessions.setdefault(symbol, []).append(TradingSession(*window))
    return {
        symbol: replace(inst, sessions=tuple(sessions.get(symbol, ())))
        for symbol, inst in instruments.items()
    }

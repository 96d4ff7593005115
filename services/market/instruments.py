"""The instruments table, read into memory: listing, quote validation and spread markup all
need it on every call, and it changes rarely (a missing symbol triggers a bounded reload)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

_COLUMNS = (
    "symbol, description, category, price_decimals, contract_size, volume_min, volume_step,"
    " volume_max, max_leverage, spread_markup, quote_currency, synthetic_start, synthetic_vol"
)


@dataclass(frozen=True)
class InstrumentSpec:
    symbol: str
    description: str
    category: str  # crypto | forex | metal
    price_decimals: int
    contract_size: Decimal
    volume_min: Decimal
    volume_step: Decimal
    volume_max: Decimal
    max_leverage: int
    spread_markup: Decimal
    quote_currency: str
    synthetic_start: Decimal
    synthetic_vol: Decimal

    @property
    def tick_size(self) -> Decimal:
        """Smallest price increment, e.g. 0.01 for 2 price decimals."""
        return Decimal(1).scaleb(-self.price_decimals)


async def load_instruments(pool: AsyncConnectionPool) -> dict[str, InstrumentSpec]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM instruments WHERE enabled ORDER BY symbol"
        )
        rows = await cur.fetchall()
    return {row[0]: InstrumentSpec(*row) for row in rows}


class InstrumentCatalog:
    """Enabled instruments by symbol. An unknown symbol reloads the table at most every
    `min_refresh_s`, so a newly listed instrument is picked up without a restart while a flood
    of bad symbols costs at most one query per interval."""

    def __init__(self, pool: AsyncConnectionPool, min_refresh_s: float = 2.0) -> None:
        self._pool = pool
        self._min_refresh_s = min_refresh_s
        self._by_symbol: dict[str, InstrumentSpec] = {}
        self._loaded_at = float("-inf")

    async def refresh(self) -> None:
        self._by_symbol = await load_instruments(self._pool)
        self._loaded_at = time.monotonic()
        log.debug("instruments loaded", extra={"count": len(self._by_symbol)})

    async def refresh_if_stale(self) -> None:
        """Reload unless the last load is under `min_refresh_s` old, so callers that want
        fresh listings (any public request) cost at most one query per interval."""
        if time.monotonic() - self._loaded_at >= self._min_refresh_s:
            await self.refresh()

    def get(self, symbol: str) -> InstrumentSpec | None:
        return self._by_symbol.get(symbol)

    async def lookup(self, symbol: str) -> InstrumentSpec | None:
        spec = self._by_symbol.get(symbol)
        if spec is None:
            await self.refresh_if_stale()
            spec = self._by_symbol.get(symbol)
        return spec

    def all(self) -> list[InstrumentSpec]:
        return list(self._by_symbol.values())

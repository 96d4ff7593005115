"""The instruments table, read into memory: listing, quote validation and spread markup all
need it on every call, and it changes rarely (a missing symbol triggers a bounded reload)."""

from __future__ import annotations

import logging
import time

from psycopg_pool import AsyncConnectionPool

from kit.data.account_types import AccountType, load_account_types
from kit.data.instruments import Instrument, load_instruments

log = logging.getLogger(__name__)


class InstrumentCatalog:
    """Enabled instruments by symbol, and the account types (whose spreads quotes can be
    served with). An unknown symbol or type reloads the table at most every
    `min_refresh_s`, so a newly listed instrument is picked up without a restart while a flood
    of bad symbols costs at most one query per interval."""

    def __init__(self, pool: AsyncConnectionPool, min_refresh_s: float = 2.0) -> None:
        self._pool = pool
        self._min_refresh_s = min_refresh_s
        self._by_symbol: dict[str, Instrument] = {}
        self._types: dict[str, AccountType] = {}
        self._loaded_at = float("-inf")

    async def refresh(self) -> None:
        self._by_symbol = await load_instruments(self._pool)
        self._types = await load_account_types(self._pool)
        self._loaded_at = time.monotonic()
        log.debug("instruments loaded", extra={"count": len(self._by_symbol)})

    async def refresh_if_stale(self) -> None:
        """Reload unless the last load is under `min_refresh_s` old, so callers that want
        fresh listings (any public request) cost at most one query per interval."""
        if time.monotonic() - self._loaded_at >= self._min_refresh_s:
            await self.refresh()

    def get(self, symbol: str) -> Instrument | None:
        return self._by_symbol.get(symbol)

    async def lookup(self, symbol: str) -> Instrument | None:
        spec = self._by_symbol.get(symbol)
        if spec is None:
            await self.refresh_if_stale()
            spec = self._by_symbol.get(symbol)
        return spec

    async def account_type(self, name: str) -> AccountType | None:
        account_type = self._types.get(name)
        if account_type is None:
            await self.refresh_if_stale()
            account_type = self._types.get(name)
        return account_type

    def all(self) -> list[Instrument]:
        return list(self._by_symbol.values())

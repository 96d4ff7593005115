"""Account types (Standard, Pro, Raw Spread, Zero) and their per-instrument terms, as one row
model for MarketData (the spread a type's quotes carry) and the Trading engine (levels, maximum
leverage, commission, the spread a type's orders fill at)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from kit.data.instruments import Instrument

if TYPE_CHECKING:  # the engine imports the row model and must not load a database driver
    from psycopg_pool import AsyncConnectionPool

STANDARD = "standard"
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Terms:
    """One type's conditions on one instrument."""

    spread_markup: Decimal | None  # None: the instrument's default markup
    commission_per_lot: Decimal  # USD per lot per side


NO_TERMS = Terms(None, ZERO)


@dataclass(frozen=True, slots=True)
class AccountType:
    name: str
    display_name: str
    margin_call_level: Decimal  # percent
    stop_out_level: Decimal  # percent
    max_leverage: int
    terms: Mapping[str, Terms] = field(default_factory=dict)

    def terms_of(self, symbol: str) -> Terms:
        return self.terms.get(symbol, NO_TERMS)

    def markup(self, inst: Instrument) -> Decimal:
        markup = self.terms_of(inst.symbol).spread_markup
        return inst.spread_markup if markup is None else markup

    def quote_shift(self, inst: Instrument) -> Decimal:
        """How far this type's bid sits above (and its ask below) the published quote, which
        carries the instrument's default markup: half the difference of the markups, rounded
        down to the tick so a type never gets a tighter spread than its markup gives (a
        negative shift widens)."""
        half = (inst.spread_markup - self.markup(inst)) / 2
        return half.quantize(inst.tick_size, rounding=ROUND_FLOOR)


def fallback_types(margin_call_level: Decimal, stop_out_level: Decimal) -> dict[str, AccountType]:
    """Only a Standard type with the given levels, no commission and default markups: for an
    engine built without the account_types table (unit tests)."""
    return {STANDARD: AccountType(STANDARD, "Standard", margin_call_level, stop_out_level, 2000)}


_TYPES = (
    "SELECT name, display_name, margin_call_level, stop_out_level, max_leverage"
    " FROM account_types ORDER BY rank"
)
_TERMS = (
    "SELECT t.account_type, t.symbol, t.spread_markup, t.commission_per_lot"
    " FROM account_type_terms t JOIN instruments i USING (symbol) WHERE i.enabled"
)


async def load_account_types(pool: AsyncConnectionPool) -> dict[str, AccountType]:
    """Every account type by name, in listing order (Standard first)."""
    async with pool.connection() as conn:
        types = await (await conn.execute(_TYPES)).fetchall()
        terms = await (await conn.execute(_TERMS)).fetchall()
    by_type: dict[str, dict[str, Terms]] = {row[0]: {} for row in types}
    for type_name, symbol, markup, commission in terms:
        by_type[type_name][symbol] = Terms(markup, commission)
    return {
        name: AccountType(name, display, mc, so, leverage, by_type[name])
        for name, display, mc, so, leverage in types
    }

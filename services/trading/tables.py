"""The tables the group commit writes, declared once: each column's name, PostgreSQL type and
array encoder. The `INSERT ... SELECT * FROM unnest(...)` statements, the rows (read off the
domain objects by column name), their parameters and the read-back SELECT lists are all built
from these specs, so column order is written in one place.

One statement per table per batch: the rows travel as one array literal per column (pgarrays)
and are expanded by unnest(), so a batch of any size costs the server a handful of statements,
not one per row. Upserted rows must be unique per batch (ON CONFLICT DO UPDATE requires it).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.trading import pgarrays

_ENCODERS: dict[str, Callable[[Iterable[Any]], str]] = {
    "bigint": pgarrays.ints,
    "int": pgarrays.ints,
    "smallint": pgarrays.ints,  # enums: IntEnum values
    "numeric": pgarrays.numerics,
    "text": pgarrays.texts,
    "bool": pgarrays.bools,
    "timestamptz": pgarrays.timestamps,
    "bytea": pgarrays.byteas,
}


def _empty_as_null(values: Iterable[str | None]) -> str:
    return pgarrays.texts(v or None for v in values)


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str
    # Array encoder; by default the one of the type.
    encoder: Callable[[Iterable[Any]], str] | None = None

    def encode(self, values: Iterable[Any]) -> str:
        return (self.encoder or _ENCODERS[self.pg_type])(values)


@dataclass(frozen=True, eq=False)  # compared (and hashed) by identity: one object per table
class Table:
    name: str
    columns: tuple[Column, ...]
    conflict_key: str = ""  # upsert on this column...
    updated: tuple[str, ...] = ()  # ...updating these
    names: tuple[str, ...] = field(init=False)
    insert_sql: str = field(init=False)
    select_list: str = field(init=False)
    _getter: Callable[[Any], tuple[Any, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.columns)
        set_ = object.__setattr__
        set_(self, "names", names)
        set_(self, "select_list", ", ".join(names))
        arrays = ", ".join(f"%s::{c.pg_type}[]" for c in self.columns)
        sql = f"INSERT INTO {self.name} ({', '.join(names)}) SELECT * FROM unnest({arrays})"
        if self.conflict_key:
            updates = ", ".join(f"{n} = excluded.{n}" for n in self.updated)
            sql += f" ON CONFLICT ({self.conflict_key}) DO UPDATE SET {updates}"
        set_(self, "insert_sql", sql)
        # One C-level call per row (attrgetter of several names returns the tuple).
        set_(self, "_getter", operator.attrgetter(*names))

    def row(self, item: Any) -> tuple[Any, ...]:
        """The row of a domain object whose attributes are named as the columns."""
        return self._getter(item)

    def params(self, rows: Sequence[tuple[Any, ...]]) -> list[str]:
        """Rows -> one array literal per column (the parameters of insert_sql)."""
        return [
            column.encode(values)
            for column, values in zip(self.columns, zip(*rows, strict=True), strict=True)
        ]

    def read(self, row: Sequence[Any]) -> dict[str, Any]:
        """A row selected with select_list, by column name."""
        return dict(zip(self.names, row, strict=True))


ACCOUNTS = Table(
    "trading_accounts",
    (
        Column("account_id", "bigint"),
        Column("user_id", "text"),
        Column("shard", "int"),
        Column("balance", "numeric"),
        Column("leverage", "int"),
        Column("margin_call", "bool"),
        Column("created_at", "timestamptz"),
        Column("updated_at", "timestamptz"),
        Column("account_type", "text"),
        Column("kind", "smallint"),
        Column("swap_free", "bool"),
        Column("is_default", "bool"),
    ),
    conflict_key="account_id",
    updated=("balance", "leverage", "margin_call", "updated_at"),
)

ORDERS = Table(
    "trading_orders",
    (
        Column("order_id", "bigint"),
        Column("account_id", "bigint"),
        # NULL when absent: the unique index on (account_id, client_order_id) skips NULLs.
        Column("client_order_id", "text", _empty_as_null),
        Column("fingerprint", "text"),
        Column("symbol", "text"),
        Column("side", "smallint"),
        Column("type", "smallint"),
        Column("status", "smallint"),
        Column("volume", "numeric"),
        Column("price", "numeric"),
        Column("stop_loss", "numeric"),
        Column("take_profit", "numeric"),
        Column("leverage", "int"),
        Column("fill_price", "numeric"),
        Column("position_id", "bigint"),
        Column("reject_reason", "text"),
        Column("created_at", "timestamptz"),
        Column("updated_at", "timestamptz"),
        Column("expire_at", "timestamptz"),
        Column("trailing_stop", "numeric"),
    ),
    conflict_key="order_id",
    updated=("status", "fill_price", "position_id", "reject_reason", "updated_at"),
)

POSITIONS = Table(
    "trading_positions",
    (
        Column("position_id", "bigint"),
        Column("account_id", "bigint"),
        Column("order_id", "bigint"),
        Column("symbol", "text"),
        Column("side", "smallint"),
        Column("volume", "numeric"),
        Column("open_price", "numeric"),
        Column("stop_loss", "numeric"),
        Column("take_profit", "numeric"),
        Column("leverage", "int"),
        Column("margin", "numeric"),
        Column("opened_at", "timestamptz"),
        Column("closed_at", "timestamptz"),
        Column("commission", "numeric"),
        Column("trailing_stop", "numeric"),
        Column("swap", "numeric"),
    ),
    conflict_key="position_id",
    updated=(
        "volume",
        "stop_loss",
        "take_profit",
        "margin",
        "closed_at",
        "commission",
        "trailing_stop",
        "swap",
    ),
)

TRADES = Table(
    "trading_trades",
    (
        Column("trade_id", "bigint"),
        Column("account_id", "bigint"),
        Column("position_id", "bigint"),
        Column("symbol", "text"),
        Column("side", "smallint"),
        Column("volume", "numeric"),
        Column("open_price", "numeric"),
        Column("close_price", "numeric"),
        Column("realized_pnl", "numeric"),
        Column("close_reason", "smallint"),
        Column("opened_at", "timestamptz"),
        Column("closed_at", "timestamptz"),
        Column("close_note", "text"),
        Column("commission", "numeric"),
        Column("swap", "numeric"),
    ),
)

LEDGER = Table(
    "trading_ledger",
    (
        Column("entry_id", "bigint"),
        Column("account_id", "bigint"),
        Column("kind", "smallint"),
        Column("amount", "numeric"),
        Column("balance_after", "numeric"),
        Column("reference_id", "text"),
        Column("created_at", "timestamptz"),
    ),
)

JOURNAL = Table(
    "trading_journal",
    (
        Column("shard", "int"),
        Column("sequence", "bigint"),
        Column("account_id", "bigint"),
        Column("event_type", "smallint"),
        Column("payload", "bytea"),
        Column("created_at", "timestamptz"),
        # The traceparent of the span that committed it (NULL when untraced).
        Column("traceparent", "text"),
    ),
)


@dataclass(slots=True)
class JournalEntry:
    """One row of the journal (an event as it was answered and published)."""

    shard: int
    sequence: int
    account_id: int
    event_type: int
    payload: bytes
    created_at: datetime
    traceparent: str | None = None


ROLLOVERS = Table(
    "trading_rollovers",
    (Column("shard", "int"), Column("last_rollover", "timestamptz")),
    conflict_key="shard",
    updated=("last_rollover",),
)

# Write order: accounts first, everything else references them.
WRITE_ORDER = (ACCOUNTS, ORDERS, POSITIONS, TRADES, LEDGER, JOURNAL, ROLLOVERS)

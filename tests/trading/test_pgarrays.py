"""The group commit's array literals read back from PostgreSQL as exactly the values written,
including the awkward ones: quotes, backslashes, braces, the text "NULL", NULLs, exponents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from services.trading import pgarrays

CASES: list[tuple[str, Callable[[Any], str], list[Any]]] = [
    ("bigint", pgarrays.ints, [1, None, 2**62, -5, 0]),
    (
        "numeric",
        pgarrays.numerics,
        [Decimal("2400.20"), None, Decimal("1E+2"), Decimal("-12.5"), Decimal("0.000000001")],
    ),
    ("text", pgarrays.texts, ['a"b\\c', None, "", "x y,{z}", "NULL", "ünï'cøde", 'back\\\\slash"']),
    (
        "timestamptz",
        pgarrays.timestamps,
        [
            datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
            None,
            datetime(2026, 6, 1, 9, 30, tzinfo=timezone(timedelta(hours=3))),
        ],
    ),
    ("bool", pgarrays.bools, [True, False, True]),
    ("bytea", pgarrays.byteas, [b'\x00\xff\\"{}', b"", b"payload"]),
]


@pytest.mark.parametrize(("sql_type", "encode", "values"), CASES, ids=[case[0] for case in CASES])
async def test_values_round_trip(
    db_pool: AsyncConnectionPool, sql_type: str, encode: Callable[[Any], str], values: list[Any]
) -> None:
    async with db_pool.connection() as conn:
        cur = await conn.execute(f"SELECT unnest(%s::{sql_type}[])", (encode(values),))
        got = [row[0] for row in await cur.fetchall()]
    if sql_type == "bytea":
        got = [bytes(v) for v in got]
    assert got == values

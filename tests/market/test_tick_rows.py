"""The tick writer's decoder: QuoteEvents -> COPY text and candle buckets, checked by loading
the text into the real `ticks` table (inside a transaction that is rolled back) and reading
the values back; records that could break the COPY framing are counted and skipped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiokafka import TopicPartition
from exness.market.v1 import market_pb2
from psycopg_pool import AsyncConnectionPool

from services.market.candles import CandleFolder
from services.market.tick_rows import COPY_SQL
from services.market.tick_writer import RecordDecoder


@dataclass
class Record:
    offset: int
    value: bytes


def event(
    symbol: str, bid: str, ask: str, time_ns: int, source: str = "feed", nanos: int | None = None
) -> bytes:
    message = market_pb2.QuoteEvent(source=source)
    message.quote.symbol, message.quote.bid, message.quote.ask = symbol, bid, ask
    message.quote.time.FromNanoseconds(time_ns)
    if nanos is not None:
        message.quote.time.nanos = nanos
    message.publish_time.FromNanoseconds(time_ns + 1_500)
    return message.SerializeToString()


T0 = int(datetime(2025, 3, 4, 5, 6, 0, tzinfo=UTC).timestamp()) * 10**9


@pytest.mark.asyncio(loop_scope="session")
async def test_rows_land_exactly_and_bad_records_are_skipped(db_pool: AsyncConnectionPool) -> None:
    tp = TopicPartition("t", 0)
    values = [
        event("ZTROW", "101.25", "101.75", T0 + 123_456_789, source="a\tb\\c"),
        b"\xff\xfenot protobuf",
        event("ZTROW", "1e5", "2", T0),  # not a plain decimal
        event("ZTROW", "NaN", "2", T0),
        event("ZT\tROW", "1", "2", T0),  # would shift the COPY columns
        event("ZTROW", "1", "2", T0, nanos=1_500_000_000),  # out-of-range nanos
        event("ZTROW", "99.5", "100", T0 + 59 * 10**9 + 999_999_999),
    ]
    records = {tp: [Record(10 + i, v) for i, v in enumerate(values)]}
    positions = {0: 11}  # offset 10 was applied already: a re-delivery, skipped
    batch = RecordDecoder().decode(1, records, positions)
    assert batch.next_offsets == {0: 17}
    assert positions == {0: 17}
    assert (batch.rows, batch.malformed) == (1, 5)

    async with db_pool.connection() as conn:
        try:
            async with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                await copy.write(batch.payload)
            cur = await conn.execute(
                "SELECT symbol, time, bid, ask, source, publish_time FROM ticks"
                " WHERE symbol = 'ZTROW'"
            )
            rows = await cur.fetchall()
        finally:
            await conn.rollback()
    expected_time = datetime(2025, 3, 4, 5, 6, 59, 999_999, tzinfo=UTC)  # truncated to µs
    assert rows == [
        (
            "ZTROW",
            expected_time,
            Decimal("99.5"),
            Decimal("100"),
            "feed",
            datetime(2025, 3, 4, 5, 7, 0, 1, tzinfo=UTC),
        )
    ]

    # The first record again, now past the floor: its escaped source survives the round trip.
    batch = RecordDecoder().decode(1, {tp: [Record(10, values[0])]}, {})
    async with db_pool.connection() as conn:
        try:
            async with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                await copy.write(batch.payload)
            cur = await conn.execute("SELECT source, time FROM ticks WHERE symbol = 'ZTROW'")
            assert await cur.fetchall() == [
                ("a\tb\\c", datetime(2025, 3, 4, 5, 6, 0, 123_456, tzinfo=UTC))
            ]
        finally:
            await conn.rollback()


def test_candle_folder_ohlc_with_ties_and_rollups() -> None:
    folder = CandleFolder()
    s = 10**9
    # Out of order within the minute; two ticks share the earliest and the latest time.
    for bid, at in [
        ("10.5", T0 + 30 * s),
        ("10.0", T0),
        ("11.0", T0),  # same time as the open: the first one opens
        ("9.75", T0 + 59 * s),
        ("10.25", T0 + 59 * s),  # same time as 9.75: the last one closes
        ("12", T0 + 60 * s),  # next minute
    ]:
        folder.add("ZTROW", bid, at)
    rows = {(width, start): agg for _, width, start, agg in folder.rows()}
    first = rows[(60, T0 // s)]
    assert (first.open, first.high, first.low, first.close, first.count) == (
        Decimal("10.0"),
        Decimal("11.0"),
        Decimal("9.75"),
        Decimal("10.25"),
        5,
    )
    five = rows[(300, T0 // s - (T0 // s) % 300)]
    assert (five.open, five.high, five.low, five.close, five.count) == (
        Decimal("10.0"),
        Decimal("12"),
        Decimal("9.75"),
        Decimal("12"),
        6,
    )
    assert {width for width, _ in rows} == {60, 300, 900, 3600, 14400, 86400}

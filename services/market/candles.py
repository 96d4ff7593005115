"""Candles: OHLC of the bid per interval, aligned to the UTC epoch (so 1d starts at 00:00 UTC
and 4h at 00/04/08/... UTC).

The tick writer folds each batch of ticks into per-interval aggregates here and merges them
into the `candles` table in the batch's transaction; GetCandles then reads finished rows, so
its cost depends on the number of candles returned, never on the number of ticks behind them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from exness.market.v1 import market_pb2
from psycopg import AsyncConnection

from services.market.tick_rows import STAGING_TABLE

CI = market_pb2.CandleInterval
INTERVAL_SECONDS: dict[int, int] = {
    CI.CANDLE_INTERVAL_1M: 60,
    CI.CANDLE_INTERVAL_5M: 300,
    CI.CANDLE_INTERVAL_15M: 900,
    CI.CANDLE_INTERVAL_1H: 3600,
    CI.CANDLE_INTERVAL_4H: 14400,
    CI.CANDLE_INTERVAL_1D: 86400,
}
WIDTHS = sorted(INTERVAL_SECONDS.values())
BASE_WIDTH = WIDTHS[0]


@dataclass
class Agg:
    """One candle's worth of ticks: open/close by quote time, high/low, count."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    count: int
    first_ns: int
    last_ns: int

    def merge(self, other: Agg) -> None:
        if other.first_ns < self.first_ns:
            self.open, self.first_ns = other.open, other.first_ns
        if other.last_ns >= self.last_ns:
            self.close, self.last_ns = other.close, other.last_ns
        self.high = max(self.high, other.high)
        self.low = min(self.low, other.low)
        self.count += other.count


def bucket_start(seconds: int, width: int) -> int:
    return seconds - seconds % width


class CandleFolder:
    """Aggregates ticks of one batch. Per tick only its time and bid text are appended to the
    tick's 1m bucket (the tick writer does that inline, see `add`); the aggregates are
    computed per bucket at the end with C-level min/max, and wider intervals are rolled up
    from the 1m aggregates."""

    def __init__(self) -> None:
        # (symbol, 1m open in epoch seconds) -> (quote times in ns, bids as decimal text)
        self.buckets: dict[tuple[str, int], tuple[list[int], list[str]]] = {}

    def add(self, symbol: str, bid: str, when_ns: int) -> None:
        seconds = when_ns // 1_000_000_000
        key = (symbol, seconds - seconds % BASE_WIDTH)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = ([], [])
        bucket[0].append(when_ns)
        bucket[1].append(bid)

    def _base(self) -> dict[tuple[str, int], Agg]:
        out: dict[tuple[str, int], Agg] = {}
        for key, (times, bids) in self.buckets.items():
            prices = list(map(Decimal, bids))
            first_ns, last_ns = min(times), max(times)
            # Ties: the first tick of the earliest time opens, the last of the latest closes.
            first = times.index(first_ns)
            last = len(times) - 1 - times[::-1].index(last_ns)
            out[key] = Agg(
                prices[first],
                max(prices),
                min(prices),
                prices[last],
                len(prices),
                first_ns,
                last_ns,
            )
        return out

    def rows(self) -> list[tuple[str, int, int, Agg]]:
        """(symbol, interval_s, open_time epoch seconds, aggregate) for every interval."""
        out: list[tuple[str, int, int, Agg]] = []
        base = self._base()
        for width in WIDTHS:
            if width == BASE_WIDTH:
                out.extend((s, width, start, agg) for (s, start), agg in base.items())
                continue
            wide: dict[tuple[str, int], Agg] = {}
            for (symbol, start), agg in base.items():
                key = (symbol, bucket_start(start, width))
                have = wide.get(key)
                if have is None:
                    wide[key] = Agg(
                        agg.open, agg.high, agg.low, agg.close, agg.count, agg.first_ns, agg.last_ns
                    )
                else:
                    have.merge(agg)
            out.extend((s, width, start, agg) for (s, start), agg in wide.items())
        return out


# One statement per batch: the aggregates travel as arrays and are merged row by row into
# what earlier batches stored (earliest open, latest close, extremes, summed counts).
_UPSERT_SQL = """
INSERT INTO candles AS c
    (symbol, interval_s, open_time, open, high, low, close, tick_count, first_time, last_time)
SELECT * FROM unnest(%s::text[], %s::int[], %s::timestamptz[], %s::numeric[], %s::numeric[],
                     %s::numeric[], %s::numeric[], %s::bigint[], %s::timestamptz[],
                     %s::timestamptz[])
ON CONFLICT (symbol, interval_s, open_time) DO UPDATE SET
    open = CASE WHEN excluded.first_time < c.first_time THEN excluded.open ELSE c.open END,
    first_time = LEAST(c.first_time, excluded.first_time),
    close = CASE WHEN excluded.last_time >= c.last_time THEN excluded.close ELSE c.close END,
    last_time = GREATEST(c.last_time, excluded.last_time),
    high = GREATEST(c.high, excluded.high),
    low = LEAST(c.low, excluded.low),
    tick_count = c.tick_count + excluded.tick_count
"""


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_to_datetime(epoch_ns: int) -> datetime:
    """Exact to the microsecond (PostgreSQL's precision), no float rounding."""
    return EPOCH + timedelta(microseconds=epoch_ns // 1000)


async def upsert_candles(conn: AsyncConnection, folder: CandleFolder) -> int:
    rows = folder.rows()
    if not rows:
        return 0
    columns: list[list[object]] = [[] for _ in range(10)]
    for symbol, width, start, agg in rows:
        values = (
            symbol,
            width,
            datetime.fromtimestamp(start, UTC),
            agg.open,
            agg.high,
            agg.low,
            agg.close,
            agg.count,
            ns_to_datetime(agg.first_ns),
            ns_to_datetime(agg.last_ns),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    await conn.execute(_UPSERT_SQL, columns)
    return len(rows)


# The staged ticks this transaction inserted itself (xmin), not those already stored.
_STORED_NOW_SQL = f"""
SELECT t.symbol, t.time, t.bid::text FROM ticks t
JOIN (SELECT DISTINCT symbol, time, source FROM {STAGING_TABLE}) s USING (symbol, time, source)
WHERE t.xmin = pg_current_xact_id()::xid
ORDER BY t.time, t.publish_time
"""


async def fold_stored_now(conn: AsyncConnection) -> CandleFolder:
    """The candles of the staged ticks that the current transaction stored: after a merge
    that skipped quotes already stored, only these may be counted. Must run in the
    transaction's top level (not in a savepoint, whose rows carry another xmin)."""
    folder = CandleFolder()
    cur = await conn.execute(_STORED_NOW_SQL)
    for symbol, when, bid in await cur.fetchall():
        folder.add(symbol, bid, (when - EPOCH) // timedelta(microseconds=1) * 1000)
    return folder


_SELECT_SQL = """
SELECT open_time, open, high, low, close, tick_count FROM candles
WHERE symbol = %s AND interval_s = %s AND open_time >= %s AND open_time < %s
ORDER BY open_time DESC LIMIT %s
"""


@dataclass(frozen=True)
class CandleRow:
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    tick_count: int


async def read_candles(
    conn: AsyncConnection, symbol: str, width: int, start: datetime, end: datetime, limit: int
) -> list[CandleRow]:
    """Candles whose interval overlaps [start, end), newest `limit` of them, oldest first."""
    first_open = datetime.fromtimestamp(bucket_start(int(start.timestamp()), width), UTC)
    cur = await conn.execute(_SELECT_SQL, (symbol, width, first_open, end, limit))
    rows = await cur.fetchall()
    return [CandleRow(*row) for row in reversed(rows)]

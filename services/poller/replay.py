"""Replay of a recorded tape: one JSON object per line,
{"symbol": "BTCUSD", "bid": "65000.10", "ask": "65001.20", "time": "2024-05-01T12:00:00.250Z"},
sent with the recorded times (so candles of a replay match the recording), paced at `rate`
quotes per second (0: as fast as the publisher takes them). Bad lines are counted and skipped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

from kit.decimals import parse_decimal
from services.poller.sources import FeedStats, RawQuote

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_tape_line(line: str) -> RawQuote | None:
    try:
        entry = json.loads(line)
        symbol, bid, ask, when = entry["symbol"], entry["bid"], entry["ask"], entry["time"]
        if not all(isinstance(v, str) for v in (symbol, bid, ask, when)):
            return None
        parse_decimal(bid)
        parse_decimal(ask)
        stamp = datetime.fromisoformat(when)
    except (ValueError, KeyError, TypeError):
        return None
    if stamp.tzinfo is None:
        return None
    delta = stamp - _EPOCH
    time_ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return RawQuote(symbol, bid, ask, time_ns)


def read_tape(path: Path, stats: FeedStats) -> Iterator[RawQuote]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            stats.received += 1
            quote = parse_tape_line(line)
            if quote is None:
                stats.skipped["malformed"] += 1
                continue
            yield quote


async def replay(path: Path, rate: float, stats: FeedStats) -> AsyncIterator[RawQuote]:
    started = time.monotonic()
    for i, quote in enumerate(read_tape(path, stats)):
        if rate > 0:
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif i % 500 == 0:
            await asyncio.sleep(0)
        yield quote

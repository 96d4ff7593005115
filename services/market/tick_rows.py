"""QuoteEvents -> `ticks` rows in COPY text format, built while decoding.

The tick writer's cost is per-row Python work, so each record becomes one line of COPY text
with as little work as possible: prices go through as the decimal strings the message
carries (checked against a strict pattern, never parsed for the row itself), timestamps are
formatted from seconds + nanos with the "YYYY-MM-DD HH:MM:SS" part cached per second, and the
batch is sent to PostgreSQL as one buffer instead of a `write_row` per row.

Anything that could break the COPY framing (a tab, newline or backslash in a symbol, a price
that is not a plain decimal, a time PostgreSQL would refuse) makes the record malformed: it is
counted and skipped, so one bad message can never make a whole batch fail forever.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

COPY_COLUMNS = "ticks (symbol, time, bid, ask, source, publish_time)"
COPY_SQL = f"COPY {COPY_COLUMNS} FROM STDIN"

# The writer's path: COPY into a per-connection staging table, then one INSERT that skips
# quotes already stored (ticks_quote_key), so writing a quote twice stores it once.
STAGING_TABLE = "ticks_incoming"
CREATE_STAGING_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} (LIKE ticks) ON COMMIT DELETE ROWS"
)
STAGED_COPY_SQL = f"COPY {STAGING_TABLE} (symbol, time, bid, ask, source, publish_time) FROM STDIN"
MERGE_STAGED_SQL = f"INSERT INTO ticks SELECT * FROM {STAGING_TABLE} ON CONFLICT DO NOTHING"

# What PublishQuotes writes (format_decimal): digits with an optional fraction.
_PRICE = re.compile(r"[0-9]{1,30}(?:\.[0-9]{1,30})?")
_SYMBOL = re.compile(r"[A-Za-z0-9._:/-]{1,32}")
# Seconds PostgreSQL and time.gmtime both take: 1970-01-01 up to the end of year 9999.
_MAX_SECONDS = 253_402_300_799

price_ok: Callable[[str], object] = _PRICE.fullmatch


def symbol_ok(symbol: str) -> bool:
    return _SYMBOL.fullmatch(symbol) is not None


def copy_escape(text: str) -> str:
    """COPY text format escaping for a free-text column (the event's source)."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class StampCache:
    """`seconds, nanos` -> "YYYY-MM-DD HH:MM:SS.ffffff+00" (UTC, microseconds, truncated like
    PostgreSQL's precision). Quotes arrive in time order, so the per-second prefix is almost
    always cached; the cache is cleared when it grows (a replay across a long range)."""

    def __init__(self, limit: int = 4096) -> None:
        # Read directly by the hot loop (`cached.get(s) or prefix(s)`).
        self.cached: dict[int, str] = {}
        self._limit = limit

    def prefix(self, seconds: int) -> str | None:
        prefix = self.cached.get(seconds)
        if prefix is None:
            if not 0 <= seconds <= _MAX_SECONDS:
                return None
            if len(self.cached) >= self._limit:
                self.cached.clear()
            prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
            self.cached[seconds] = prefix
        return prefix

"""The offline feed: a seeded random walk per instrument, paced at a total rate.

Each step multiplies the instrument's mid by (1 + vol * sqrt(dt) * z), z ~ N(0, 1), where vol
is the instrument's per-second volatility (instruments.synthetic_vol) and dt the time between
two of its quotes; the raw spread is a few ticks. All price arithmetic is Decimal; only z, the
randomness itself, comes from the float RNG. The same seed gives the same prices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from random import Random

from kit.decimals import format_decimal
from services.poller.sources import RawQuote


@dataclass(frozen=True)
class WalkSpec:
    symbol: str
    start: Decimal
    vol: Decimal  # per second, as a fraction of the price
    price_decimals: int


# Raw exchange spread, as a fraction of the price (before the broker's markup).
RAW_SPREAD = Decimal("0.00002")


class RandomWalk:
    def __init__(self, specs: Sequence[WalkSpec], rate: float, seed: int) -> None:
        if not specs:
            raise ValueError("the synthetic feed needs at least one instrument")
        if rate <= 0:
            raise ValueError("--rate must be positive for the synthetic feed")
        self._specs = list(specs)
        self._rng = Random(seed)
        self._mid = {s.symbol: s.start for s in specs}
        self.rate = rate
        # Every instrument quotes `rate / n` times a second on average.
        self._sqrt_dt = Decimal(len(specs) / rate).sqrt()

    def step(self, when_ns: int) -> RawQuote:
        spec = self._rng.choice(self._specs)
        z = Decimal(repr(round(self._rng.gauss(0.0, 1.0), 6)))
        mid = self._mid[spec.symbol] * (1 + spec.vol * self._sqrt_dt * z)
        tick = Decimal(1).scaleb(-spec.price_decimals)
        mid = max(mid, tick * 10)  # a walk never reaches zero
        self._mid[spec.symbol] = mid
        half = max(mid * RAW_SPREAD / 2, tick / 2)
        bid = (mid - half).quantize(tick, rounding=ROUND_FLOOR)
        ask = (mid + half).quantize(tick, rounding=ROUND_CEILING)
        places = spec.price_decimals
        return RawQuote(
            spec.symbol, format_decimal(bid, places), format_decimal(ask, places), when_ns
        )

    async def run(self, count: int | None = None) -> AsyncIterator[RawQuote]:
        """Quotes stamped with the current time, at `rate` per second (no drift: each quote
        is due at start + i / rate)."""
        started = time.monotonic()
        last_ns = 0
        i = 0
        while count is None or i < count:
            due = started + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            last_ns = max(time.time_ns(), last_ns + 1)
            yield self.step(last_ns)
            i += 1

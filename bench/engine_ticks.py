"""Tick cost with 1,000 vs 1,000,000 open positions far from their triggers.

Every position has a stop-loss and a take-profit far from the market, and every account a
margin watch; pending triggers are indexed by price, so a tick should cost the same whatever is
open. Target: cost(1,000,000) / cost(1,000) <= 2. Both sizes are measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import time
from datetime import UTC, datetime
from decimal import Decimal

from services.trading.engine import Engine, OrderRequest
from services.trading.model import Instrument, OrderType, Side

PER_ACCOUNT = 100
TARGET_RATIO = 2.0


def build(positions: int) -> Engine:
    btc = Instrument("BTCUSD", "crypto", 2, Decimal(1), Decimal("0.01"), Decimal("0.01"),
                     Decimal(100), 400, Decimal(60), Decimal(0))
    engine = Engine({"BTCUSD": btc})
    now = datetime.now(UTC)
    engine.on_quote("BTCUSD", Decimal("65000.00"), Decimal("65010.00"), now, now)
    buy = OrderRequest("BTCUSD", Side.BUY, OrderType.MARKET, volume=Decimal("0.01"),
                       stop_loss=Decimal("30000"), take_profit=Decimal("130000"))
    sell = OrderRequest("BTCUSD", Side.SELL, OrderType.MARKET, volume=Decimal("0.01"),
                        stop_loss=Decimal("130000"), take_profit=Decimal("30000"))
    for a in range(positions // PER_ACCOUNT):
        account = engine.account_of(f"user-{a}", now)
        engine.deposit(account, Decimal(1_000_000), now)
        for n in range(PER_ACCOUNT):
            engine.place_order(account, buy if n % 2 else sell, now)
        engine.drain()
    assert len(engine.positions) == positions
    return engine


def tick_cost_us(engine: Engine, ticks: int) -> float:
    bids = [Decimal("65000.00") + Decimal(n % 50) for n in range(ticks)]
    asks = [b + 10 for b in bids]
    now = datetime.now(UTC)
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for bid, ask in zip(bids, asks, strict=True):
            engine.on_quote("BTCUSD", bid, ask, now, now)
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    assert not engine.outbox, "a tick triggered something: the levels were not far enough"
    return elapsed / ticks * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--ticks", type=int, default=20_000)
    args = parser.parse_args()
    small = build(args.small)
    started = time.perf_counter()
    large = build(args.large)
    print(f"built {args.large:,} positions in {time.perf_counter() - started:.1f}s "
          f"({len(large.index):,} indexed triggers)")
    # Interleave the measurements so machine noise hits both sizes alike.
    small_us = min(tick_cost_us(small, args.ticks) for _ in range(3))
    large_us = min(tick_cost_us(large, args.ticks) for _ in range(3))
    ratio = large_us / small_us
    print(f"tick cost, {args.small:,} open positions: {small_us:.2f} us")
    print(f"tick cost, {args.large:,} open positions: {large_us:.2f} us")
    print(f"ratio large/small: {ratio:.2f} (target <= {TARGET_RATIO}: "
          f"{'MET' if ratio <= TARGET_RATIO else 'NOT MET'})")


if __name__ == "__main__":
    main()

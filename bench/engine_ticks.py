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
from itertools import count

from kit.data.instruments import Instrument
from services.trading.engine import Engine
from services.trading.model import Account, Position, Side, margin_of
from services.trading.swaps import rollover_at_or_before

PER_ACCOUNT = 100
TARGET_RATIO = 2.0


def build(positions: int) -> Engine:
    """An engine holding `positions` open positions, built the way a restart rebuilds one from
    the database (store.load_engine: restore_account / restore_position, then the first quote
    arms every account's margin watch): bulk, without a command and its events per position."""
    btc = Instrument(
        "BTCUSD",
        "crypto",
        2,
        Decimal(1),
        Decimal("0.01"),
        Decimal("0.01"),
        Decimal(100),
        400,
        Decimal(60),
        Decimal(0),
    )
    engine = Engine({"BTCUSD": btc})
    now = datetime.now(UTC)
    bid, ask = Decimal("65000.00"), Decimal("65010.00")
    volume, leverage = Decimal("0.01"), 100
    units = volume * btc.contract_size
    far_low, far_high = Decimal("30000"), Decimal("130000")
    # Same open prices, margins and levels as market orders at this quote would give.
    buy = (Side.BUY, ask, margin_of(volume, btc.contract_size, ask, leverage), far_low, far_high)
    sell = (Side.SELL, bid, margin_of(volume, btc.contract_size, bid, leverage), far_high, far_low)
    ids = count(1)
    for a in range(positions // PER_ACCOUNT):
        account = Account(a + 1, f"user-{a}", 0, leverage, Decimal(1_000_000), now)
        engine.restore_account(account)
        for n in range(PER_ACCOUNT):
            side, price, margin, stop_loss, take_profit = buy if n % 2 else sell
            position_id = next(ids)
            engine.restore_position(
                Position(
                    position_id,
                    account.account_id,
                    position_id,
                    "BTCUSD",
                    side,
                    volume,
                    price,
                    leverage,
                    margin,
                    units,
                    now,
                    stop_loss,
                    take_profit,
                )
            )
    engine.restore_counters(
        sequence=0,
        account=positions // PER_ACCOUNT,
        order=positions,
        position=positions,
        trade=0,
        ledger=0,
    )
    # As a restored shard: the last rollover is known (else the first quote records one).
    engine.restore_rollover(rollover_at_or_before(now))
    engine.on_quote("BTCUSD", bid, ask, now, now)
    assert not engine.has_unsaved(), "building triggered something"
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
    assert not engine.has_unsaved(), "a tick triggered something: the levels were not far enough"
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
    print(
        f"built {args.large:,} positions in {time.perf_counter() - started:.1f}s "
        f"({len(large.index):,} indexed triggers)"
    )
    # Interleave the measurements so machine noise hits both sizes alike.
    small_us = min(tick_cost_us(small, args.ticks) for _ in range(3))
    large_us = min(tick_cost_us(large, args.ticks) for _ in range(3))
    ratio = large_us / small_us
    print(f"tick cost, {args.small:,} open positions: {small_us:.2f} us")
    print(f"tick cost, {args.large:,} open positions: {large_us:.2f} us")
    print(
        f"ratio large/small: {ratio:.2f} (target <= {TARGET_RATIO}: "
        f"{'MET' if ratio <= TARGET_RATIO else 'NOT MET'})"
    )


if __name__ == "__main__":
    main()

"""In-process engine throughput: market open + close cycles (two commands each), one core.

Target: >= 50,000 commands/s. Baseline measured in the same run: the same loop doing only the
bookkeeping floor (create an object, put it in and take it out of two dicts, append two records
to an outbox), so the ratio shows what the rules themselves cost on this machine.
Persistence is not included (see bench.place_order_grpc for the durable path).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from decimal import Decimal

from kit.data.instruments import Instrument
from services.trading.engine import Engine, OrderRequest
from services.trading.model import OrderType, Side

TARGET = 50_000


def _engine() -> tuple[Engine, list[object]]:
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
    engine.on_quote("BTCUSD", Decimal("65000.00"), Decimal("65010.00"), now, now)
    accounts: list[object] = []
    for n in range(100):
        account = engine.account_of(f"user-{n}", now)
        engine.deposit(account, Decimal(1_000_000), now)
        accounts.append(account)
    engine.hand_over()
    return engine, accounts


def engine_run(cycles: int) -> float:
    engine, accounts = _engine()
    now = engine.quotes["BTCUSD"].time
    requests = [
        OrderRequest(
            "BTCUSD",
            Side.BUY if n % 2 else Side.SELL,
            OrderType.MARKET,
            volume=Decimal("0.10"),
            stop_loss=None,
        )
        for n in range(2)
    ]
    started = time.perf_counter()
    for n in range(cycles):
        account = accounts[n % 100]
        result = engine.place_order(account, requests[n & 1], now)  # type: ignore[arg-type]
        assert result.position is not None
        engine.close_position(account, result.position.position_id, None, now)  # type: ignore[arg-type]
        if n % 1000 == 0:
            engine.hand_over()  # what the group-commit writer does
    elapsed = time.perf_counter() - started
    return 2 * cycles / elapsed


def floor_run(cycles: int) -> float:
    positions: dict[int, object] = {}
    per_account: dict[int, object] = {}
    outbox: list[object] = []
    started = time.perf_counter()
    for n in range(cycles):
        item = (n, "BTCUSD", Decimal("0.10") * 2)
        positions[n] = item
        per_account[n] = item
        outbox.append(item)
        del positions[n]
        del per_account[n]
        outbox.append(item)
        if n % 1000 == 0:
            outbox = []
    elapsed = time.perf_counter() - started
    return 2 * cycles / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=100_000)
    args = parser.parse_args()
    engine_run(2000)  # warm-up
    rate = max(engine_run(args.cycles) for _ in range(3))
    floor = max(floor_run(args.cycles) for _ in range(3))
    print(f"engine open+close: {rate:,.0f} commands/s ({args.cycles:,} cycles, best of 3)")
    print(f"bookkeeping floor: {floor:,.0f} commands/s")
    print(f"ratio engine/floor: {rate / floor:.3f}")
    print(f"target >= {TARGET:,}/s: {'MET' if rate >= TARGET else 'NOT MET'}")


if __name__ == "__main__":
    main()

"""Swaps at the daily rollover (docs/trading-rules.md): driven by the engine's clock, charged
once per rollover on every open position of an account that is not swap-free, three days on
Wednesday for forex and metals, as SWAP ledger entries, on the position and on the trade."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from kit.data.instruments import SwapType, load_instruments
from services.trading.engine import Engine
from services.trading.model import AccountKind, Event, EventType, LedgerKind, RolloverMark, Side
from services.trading.store import load_engine
from tests.trading.conftest import StartTrading
from tests.trading.support import SESSIONS, D, instruments, market

BUY, SELL = Side.BUY, Side.SELL
TUESDAY = datetime(2025, 1, 7, 12, 0, tzinfo=UTC)
TUESDAY_ROLLOVER = datetime(2025, 1, 7, 22, 0, tzinfo=UTC)
WEDNESDAY_ROLLOVER = datetime(2025, 1, 8, 22, 0, tzinfo=UTC)

# As migrations/0312_swaps.sql seeds them.
SWAPS = {
    "EURUSD": (SwapType.POINTS, "-8.5", "3.2", 3),
    "XAUUSD": (SwapType.POINTS, "-45.0", "22.0", 3),
    "BTCUSD": (SwapType.PERCENT_PER_YEAR, "-20", "-10", 0),
}


def swap_engine(charge_swaps: bool = True) -> Engine:
    specs = instruments()
    for symbol, (kind, long, short, triple) in SWAPS.items():
        specs[symbol] = replace(
            specs[symbol],
            swap_type=kind,
            swap_long=D(long),
            swap_short=D(short),
            triple_swap_weekday=triple,
        )
    return Engine(specs, charge_swaps=charge_swaps)


def at(engine: Engine, when: datetime, symbol: str, bid: str, ask: str) -> None:
    engine.on_quote(symbol, D(bid), D(ask), when, when)


def charges(engine: Engine) -> list[tuple[int, D]]:
    """(position id, amount) of each SWAP_CHARGED event since the last look."""
    out = []
    for e in engine.hand_over().items:
        if isinstance(e, Event) and e.type is EventType.SWAP_CHARGED:
            assert e.ledger is not None
            assert e.ledger.kind is LedgerKind.SWAP
            out.append((int(e.ledger.reference_id), e.ledger.amount))
    return out


def test_swaps_across_a_wednesday_rollover() -> None:
    engine = swap_engine()
    alice = engine.account_of("alice", TUESDAY)
    free = engine.create_account("alice", "standard", AccountKind.DEMO, 0, True, TUESDAY)
    for account in (alice, free):
        engine.deposit(account, D(10000), TUESDAY)
    at(engine, TUESDAY, "EURUSD", "1.08500", "1.08510")
    at(engine, TUESDAY, "BTCUSD", "65000", "65010")
    long_eur = engine.place_order(alice, market("EURUSD", BUY, "1"), TUESDAY).position
    short_eur = engine.place_order(alice, market("EURUSD", SELL, "2"), TUESDAY).position
    btc = engine.place_order(alice, market("BTCUSD", BUY, "1"), TUESDAY).position
    engine.place_order(free, market("EURUSD", BUY, "1"), TUESDAY)
    assert long_eur is not None
    assert short_eur is not None
    assert btc is not None
    charges(engine)
    balance = alice.balance

    # Nothing before the rollover instant.
    at(engine, TUESDAY_ROLLOVER - timedelta(seconds=1), "EURUSD", "1.08500", "1.08510")
    assert charges(engine) == []
    # The first tick at or after it charges each position once:
    # EURUSD long 1 lot x 100000 x -8.5 points x 0.00001 = -8.50; short 2 lots x 3.2 = +6.40;
    # BTCUSD long 1 x 65000 (its bid) x -20 % / 360 = -36.11.
    at(engine, TUESDAY_ROLLOVER, "EURUSD", "1.08500", "1.08510")
    assert sorted(charges(engine)) == sorted(
        [
            (long_eur.position_id, D("-8.50")),
            (short_eur.position_id, D("6.40")),
            (btc.position_id, D("-36.11")),
        ]
    )
    at(engine, TUESDAY_ROLLOVER + timedelta(minutes=1), "EURUSD", "1.08500", "1.08510")
    assert charges(engine) == []  # once per rollover
    # Wednesday: triple for forex (covering the weekend), one day for crypto.
    at(engine, WEDNESDAY_ROLLOVER + timedelta(seconds=5), "BTCUSD", "65000", "65010")
    assert sorted(charges(engine)) == sorted(
        [
            (long_eur.position_id, D("-25.50")),
            (short_eur.position_id, D("19.20")),
            (btc.position_id, D("-36.11")),
        ]
    )
    assert alice.balance == balance - D("8.50") + D("6.40") - D("36.11") * 2 - D("25.50") + D(
        "19.20"
    )
    position = engine.open_position(alice, long_eur.position_id)
    assert position is not None
    assert position.swap == D("-34.00")
    # Half closed: the trade takes half the swaps, the position keeps the rest.
    now = WEDNESDAY_ROLLOVER + timedelta(minutes=1)
    at(engine, now, "EURUSD", "1.08500", "1.08510")
    short = engine.close_position(alice, short_eur.position_id, D("1"), now)
    assert short.trade.swap == D("12.80")
    assert short.position is not None
    assert short.position.swap == D("12.80")
    assert engine.close_position(alice, long_eur.position_id, None, now).trade.swap == D("-34.00")
    # The swap-free account was never charged.
    assert [p.swap for p in free.positions.values()] == [D(0)]
    assert free.balance == D(10000)


def test_weekend_rollovers_charge_forex_nothing_crypto_every_day() -> None:
    engine = swap_engine()
    friday = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)
    account = engine.account_of("bob", friday)
    engine.deposit(account, D(100000), friday)
    at(engine, friday, "XAUUSD", "2400.00", "2400.20")
    at(engine, friday, "BTCUSD", "65000", "65010")
    gold = engine.place_order(account, market("XAUUSD", SELL, "1"), friday).position
    btc = engine.place_order(account, market("BTCUSD", SELL, "1"), friday).position
    assert gold is not None
    assert btc is not None
    charges(engine)
    # One jump over three rollovers (Friday, Saturday, Sunday 22:00): each charged in turn.
    monday = datetime(2025, 1, 13, 1, 0, tzinfo=UTC)
    at(engine, monday, "BTCUSD", "65000", "65010")
    # XAUUSD short 1 lot x 100 x 22 points x 0.01 = +22.00 on Friday's only (Wednesday's
    # triple covered the weekend); BTCUSD short 1 x 65010 (its ask) x -10 % / 360 = -18.06,
    # every day.
    assert charges(engine) == [
        (gold.position_id, D("22.00")),
        (btc.position_id, D("-18.06")),
        (btc.position_id, D("-18.06")),
        (btc.position_id, D("-18.06")),
    ]


def test_a_restored_engine_charges_no_rollover_twice() -> None:
    first = swap_engine()
    account = first.account_of("carol", TUESDAY)
    first.deposit(account, D(10000), TUESDAY)
    at(first, TUESDAY, "EURUSD", "1.08500", "1.08510")
    first.place_order(account, market("EURUSD", BUY, "1"), TUESDAY)
    at(first, TUESDAY_ROLLOVER, "EURUSD", "1.08500", "1.08510")
    marks = [
        item.last_rollover for item in first.hand_over().items if isinstance(item, RolloverMark)
    ]
    assert marks[-1] == TUESDAY_ROLLOVER
    # A new engine told the last rollover charged (as load_engine does) charges only later ones.
    second = swap_engine()
    second.restore_rollover(marks[-1])
    second.restore_account(account)
    for position in list(account.positions.values()):
        second.restore_position(position)
    at(second, TUESDAY_ROLLOVER + timedelta(hours=1), "EURUSD", "1.08500", "1.08510")
    assert charges(second) == []
    at(second, WEDNESDAY_ROLLOVER, "EURUSD", "1.08500", "1.08510")
    assert [amount for _, amount in charges(second)] == [D("-25.50")]


SHARD = 8  # its own engine: other modules' engines own shards 0 to 7


async def test_the_last_rollover_rates_and_sessions_are_committed_and_loaded(
    start_trading: StartTrading, db_pool: AsyncConnectionPool
) -> None:
    trading = await start_trading(SHARD, charge_swaps=True)
    await trading.quote("BTCUSD", "65000", "65010")  # the engine records the last rollover
    now = datetime.now(UTC)
    expected = datetime.combine(now.date(), datetime.min.time(), UTC) + timedelta(hours=22)
    if expected > now:
        expected -= timedelta(days=1)
    async with db_pool.connection() as conn:
        for _ in range(100):
            cur = await conn.execute(
                "SELECT last_rollover FROM trading_rollovers WHERE shard = %s", (SHARD,)
            )
            row = await cur.fetchone()
            if row is not None:
                break
            await conn.rollback()
    assert row == (expected,)
    await trading.stop()
    loaded = await load_engine(db_pool, shard_id=SHARD, max_quote_age=timedelta(seconds=10))
    assert loaded.last_rollover == expected
    # and the seeded rates reach the engine
    specs = await load_instruments(db_pool)
    assert (specs["EURUSD"].swap_type, specs["EURUSD"].triple_swap_weekday) == (SwapType.POINTS, 3)
    assert specs["XAUUSD"].swap_short == D("22.0")
    # ... and so do the seeded sessions (migrations/0311_trading_sessions.sql)
    assert specs["EURUSD"].sessions == SESSIONS["forex"]
    assert specs["XAUUSD"].sessions == SESSIONS["metal"]
    assert specs["BTCUSD"].sessions == ()


def test_an_engine_with_swaps_off_charges_no_rollover() -> None:
    """EXNESS_SWAPS=off (the test platforms, on the wall clock): a rollover passes and
    nothing is charged, recorded or emitted."""
    engine = swap_engine(charge_swaps=False)
    alice = engine.account_of("alice", TUESDAY)
    engine.deposit(alice, D(10000), TUESDAY)
    at(engine, TUESDAY, "EURUSD", "1.08500", "1.08510")
    engine.place_order(alice, market("EURUSD", BUY, "1"), TUESDAY)
    engine.hand_over()
    balance = alice.balance
    at(engine, WEDNESDAY_ROLLOVER + timedelta(minutes=1), "EURUSD", "1.08500", "1.08510")
    handed = engine.hand_over().items
    assert not [e for e in handed if isinstance(e, (Event, RolloverMark))], handed
    assert alice.balance == balance
    assert engine.last_rollover is None

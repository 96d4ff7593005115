"""Trailing stops (docs/trading-rules.md): the stop-loss follows the close price at a distance,
only ever in the position's favour and by whole price steps, then triggers as a stop-loss; the
level reached is stored and a restarted engine resumes from it."""

from __future__ import annotations

import pytest
from exness.trading.v1 import trading_pb2 as pb

from kit.refusal import Refusal
from services.trading.engine import Engine
from services.trading.model import CloseReason, Event, EventType, Side
from tests.trading.conftest import StartTrading
from tests.trading.support import D, funded, market, new_engine, quote

BUY, SELL = Side.BUY, Side.SELL


def moves(engine: Engine) -> list[D | None]:
    """The stop-loss of each TRAILING_STOP_MOVED event since the last look."""
    return [
        e.position.stop_loss
        for e in engine.hand_over().items
        if isinstance(e, Event) and e.type is EventType.TRAILING_STOP_MOVED and e.position
    ]


def test_buy_stop_follows_the_bid_never_back_and_triggers() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    req = market("BTCUSD", BUY, "1", trailing_stop=D("100"))
    opened = engine.place_order(account, req, clock.now).position
    assert opened is not None
    assert opened.trailing_stop == D("100")
    assert opened.stop_loss == D("64900")  # bid 65000 - 100
    moves(engine)
    position = engine.open_position(account, opened.position_id)
    assert position is not None

    quote(engine, clock, "BTCUSD", "65050", "65060")
    assert position.stop_loss == D("64950")
    assert moves(engine) == [D("64950")]
    quote(engine, clock, "BTCUSD", "65050.01", "65060.01")  # one price step: one step
    assert moves(engine) == [D("64950.01")]
    quote(engine, clock, "BTCUSD", "65000", "65010")  # against the position: stays
    assert position.stop_loss == D("64950.01")
    assert moves(engine) == []
    quote(engine, clock, "BTCUSD", "64950", "64960")  # bid <= SL: closed at the bid
    assert engine.open_position(account, opened.position_id) is None
    [closed] = [
        e.trade
        for e in engine.hand_over().items
        if isinstance(e, Event) and e.type is EventType.POSITION_CLOSED and e.trade
    ]
    assert closed.close_reason is CloseReason.STOP_LOSS
    assert closed.close_price == D("64950")
    assert closed.realized_pnl == D("-60.00")  # 64950 - 65010


def test_sell_stop_follows_the_ask_and_a_better_stop_loss_is_kept() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    opened = engine.place_order(account, market("BTCUSD", SELL, "1"), clock.now).position
    assert opened is not None
    # A stop-loss already better than ask + distance stays where it is.
    kept = engine.modify_position(
        account, opened.position_id, D("65030"), None, clock.now, trailing_stop=D("50")
    )
    assert (kept.stop_loss, kept.trailing_stop) == (D("65030"), D("50"))
    quote(engine, clock, "BTCUSD", "64970", "64979")  # ask + 50 = 65029: one step better
    moves(engine)
    quote(engine, clock, "BTCUSD", "64890", "64900")  # ask 64900 + 50
    position = engine.open_position(account, opened.position_id)
    assert position is not None
    assert position.stop_loss == D("64950")
    assert moves(engine) == [D("64950")]
    quote(engine, clock, "BTCUSD", "64940", "64950")  # ask >= SL: closed at the ask
    assert engine.open_position(account, opened.position_id) is None
    assert account.balance == D("10050.00")  # 65000 - 64950

    # Clearing it (an empty trailing_stop) leaves a plain stop-loss.
    again = engine.place_order(account, market("BTCUSD", SELL, "1"), clock.now).position
    assert again is not None
    engine.modify_position(account, again.position_id, None, None, clock.now, trailing_stop=D(20))
    cleared = engine.modify_position(account, again.position_id, D("65100"), None, clock.now)
    assert (cleared.stop_loss, cleared.trailing_stop) == (D("65100"), None)
    quote(engine, clock, "BTCUSD", "64000", "64010")
    assert moves(engine) == []


@pytest.mark.parametrize("distance", ["0", "-5", "0.001", "65000", "70000"])
def test_bad_distance_is_refused_naming_the_field(distance: str) -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    with pytest.raises(Refusal) as exc:
        engine.place_order(
            account, market("BTCUSD", BUY, "1", trailing_stop=D(distance)), clock.now
        )
    assert exc.value.field == "trailing_stop"
    assert account.positions == {}


SHARD = 7  # its own engine: other modules' engines own shards 0 to 6


async def test_trailing_stop_is_stored_and_resumes_after_a_restart(
    start_trading: StartTrading,
) -> None:
    first = await start_trading(SHARD)
    md = first.md("trailing-restart")
    await first.quote("ETHUSD", "3200.00", "3201.00")
    await first.stub.Deposit(pb.DepositRequest(amount="10000"), metadata=md)
    placed = await first.stub.PlaceOrder(
        pb.PlaceOrderRequest(
            symbol="ETHUSD",
            side=pb.ORDER_SIDE_BUY,
            type=pb.ORDER_TYPE_MARKET,
            volume="1",
            trailing_stop="20",
        ),
        metadata=md,
    )
    assert placed.position.stop_loss == "3180"
    assert placed.position.trailing_stop == "20"
    await first.quote("ETHUSD", "3250.00", "3251.00")  # moves the stop-loss to 3230
    for _ in range(100):
        listed = await first.stub.ListPositions(pb.ListPositionsRequest(), metadata=md)
        if listed.positions[0].stop_loss == "3230":
            break
    assert listed.positions[0].stop_loss == "3230"
    await first.stop()

    second = await start_trading(SHARD, quotes_topic=first.quotes_topic)
    listed = await second.stub.ListPositions(pb.ListPositionsRequest(), metadata=md)
    [position] = listed.positions
    assert (position.stop_loss, position.trailing_stop) == ("3230", "20")
    await second.quote("ETHUSD", "3240.00", "3241.00")  # back: it stays at 3230
    await second.quote("ETHUSD", "3260.00", "3261.00")  # and trails on from there
    listed = await second.stub.ListPositions(pb.ListPositionsRequest(), metadata=md)
    assert listed.positions[0].stop_loss == "3240"
    await second.quote("ETHUSD", "3239.00", "3240.00")  # bid <= 3240: stopped at the bid
    trades = await second.stub.ListTrades(pb.ListTradesRequest(), metadata=md)
    assert [(t.close_reason, t.close_price, t.realized_pnl) for t in trades.trades] == [
        (pb.CLOSE_REASON_STOP_LOSS, "3239", "38.00")  # 3239 - 3201
    ]

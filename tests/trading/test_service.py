"""The TradingService over real gRPC, PostgreSQL and Kafka: ownership, shards, errors on the
wire, durability of what was answered, StreamAccount, and idempotency across a restart."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from exness.trading.v1 import trading_pb2 as pb
from psycopg_pool import AsyncConnectionPool

from kit.data.kafka import make_consumer
from tests.support.grpc_errors import failure_of
from tests.trading.conftest import StartTrading, Trading

BUY, SELL = pb.ORDER_SIDE_BUY, pb.ORDER_SIDE_SELL
MARKET, LIMIT = pb.ORDER_TYPE_MARKET, pb.ORDER_TYPE_LIMIT


def user() -> str:
    return str(uuid.uuid4())


def error_of(exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, list[str]]:
    """(code, ErrorInfo reason, BadRequest field names) of a failed call."""
    failure = failure_of(exc)
    return failure.code, failure.reason, list(failure.fields)


async def fails(call: object) -> tuple[grpc.StatusCode, str, list[str]]:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call  # type: ignore[misc]
    return error_of(exc.value)


async def ledger_and_balance(pool: AsyncConnectionPool, account_id: str) -> tuple[Decimal, Decimal]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT a.balance, (SELECT coalesce(sum(amount), 0) FROM trading_ledger l"
            " WHERE l.account_id = a.account_id) FROM trading_accounts a WHERE account_id = %s",
            (int(account_id),),
        )
        row = await cur.fetchone()
    assert row is not None
    return row[0], row[1]


async def test_trading_flow_is_committed_and_figures_add_up(
    trading: Trading, db_pool: AsyncConnectionPool
) -> None:
    stub, md = trading.stub, trading.md(user())
    await trading.quote("BTCUSD", "65000", "65010")
    deposit = await stub.Deposit(pb.DepositRequest(amount="10000"), metadata=md)
    assert deposit.account.balance == "10000.00"
    assert deposit.entry.kind == pb.LEDGER_ENTRY_KIND_DEPOSIT
    placed = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            symbol="BTCUSD", side=BUY, type=MARKET, volume="0.30", stop_loss="60000"
        ),
        metadata=md,
    )
    assert placed.order.status == pb.ORDER_STATUS_FILLED
    assert placed.order.fill_price == "65010"
    assert placed.position.margin == "195.03"
    account = (await stub.GetAccount(pb.GetAccountRequest(), metadata=md)).account
    assert account.equity == "9997.00"  # 0.3 x (65000 - 65010)
    assert account.margin == "195.03"
    assert account.free_margin == "9801.97"
    assert account.margin_level == "5125.88"
    assert account.margin_call_level == "60"
    closed = await stub.ClosePosition(
        pb.ClosePositionRequest(position_id=placed.position.position_id, volume="0.10"), metadata=md
    )
    assert closed.trade.realized_pnl == "-1.00"
    assert closed.position.volume == "0.2"
    trades = await stub.ListTrades(pb.ListTradesRequest(), metadata=md)
    assert [t.trade_id for t in trades.trades] == [closed.trade.trade_id]
    # Answered means committed: the database already agrees.
    balance, ledger = await ledger_and_balance(db_pool, account.account_id)
    assert balance == ledger == Decimal("9999.00")
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT volume, closed_at FROM trading_positions WHERE position_id = %s",
            (int(placed.position.position_id),),
        )
        assert await cur.fetchone() == (Decimal("0.20"), None)


async def test_sl_fires_from_a_kafka_quote(trading: Trading, db_pool: AsyncConnectionPool) -> None:
    stub, md = trading.stub, trading.md(user())
    await trading.quote("ETHUSD", "3200", "3201")
    await stub.Deposit(pb.DepositRequest(amount="5000"), metadata=md)
    placed = await stub.PlaceOrder(
        pb.PlaceOrderRequest(symbol="ETHUSD", side=SELL, type=MARKET, volume="1", stop_loss="3300"),
        metadata=md,
    )
    await trading.quote("ETHUSD", "3350", "3351")  # gap through the SL: closes at this ask
    await trading.app.committer.barrier()
    trades = await stub.ListTrades(pb.ListTradesRequest(symbol="ETHUSD"), metadata=md)
    assert [(t.close_reason, t.close_price) for t in trades.trades] == [
        (pb.CLOSE_REASON_STOP_LOSS, "3351")
    ]
    positions = await stub.ListPositions(pb.ListPositionsRequest(), metadata=md)
    assert placed.position.position_id not in [p.position_id for p in positions.positions]


async def test_one_user_cannot_touch_anothers_orders_or_positions(trading: Trading) -> None:
    stub = trading.stub
    alice, bob = trading.md(user()), trading.md(user())
    await trading.quote("BTCUSD", "65000", "65010")
    await stub.Deposit(pb.DepositRequest(amount="10000"), metadata=alice)
    position = (
        await stub.PlaceOrder(
            pb.PlaceOrderRequest(symbol="BTCUSD", side=BUY, type=MARKET, volume="0.01"),
            metadata=alice,
        )
    ).position
    order = (
        await stub.PlaceOrder(
            pb.PlaceOrderRequest(
                symbol="BTCUSD", side=BUY, type=LIMIT, volume="0.01", price="60000"
            ),
            metadata=alice,
        )
    ).order
    assert (await stub.ListOrders(pb.ListOrdersRequest(), metadata=bob)).orders == []
    assert (await stub.ListPositions(pb.ListPositionsRequest(), metadata=bob)).positions == []
    assert (await stub.ListTrades(pb.ListTradesRequest(), metadata=bob)).trades == []
    code, reason, _ = await fails(
        stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), metadata=bob)
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND")
    code, reason, _ = await fails(
        stub.ClosePosition(pb.ClosePositionRequest(position_id=position.position_id), metadata=bob)
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "POSITION_NOT_FOUND")
    code, reason, _ = await fails(
        stub.ModifyPosition(
            pb.ModifyPositionRequest(position_id=position.position_id, stop_loss="1"), metadata=bob
        )
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "POSITION_NOT_FOUND")
    # Still there for its owner.
    mine = await stub.ListOrders(pb.ListOrdersRequest(), metadata=alice)
    assert [o.order_id for o in mine.orders] == [order.order_id]
    cancelled = await stub.CancelOrder(
        pb.CancelOrderRequest(order_id=order.order_id), metadata=alice
    )
    assert cancelled.order.status == pb.ORDER_STATUS_CANCELLED
    code, reason, _ = await fails(
        stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), metadata=alice)
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_NOT_PENDING")


async def test_errors_on_the_wire(trading: Trading) -> None:
    stub, md = trading.stub, trading.md(user())
    await stub.Deposit(pb.DepositRequest(amount="100"), metadata=md)
    await trading.quote("BTCUSD", "65000", "65010")
    cases = [
        (
            pb.PlaceOrderRequest(symbol="BTCUSD", side=BUY, type=MARKET, volume="abc"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            ["volume"],
        ),
        (
            pb.PlaceOrderRequest(symbol="BTCUSD", side=BUY, type=MARKET, volume="0.003"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_VOLUME",
            ["volume"],
        ),
        (
            pb.PlaceOrderRequest(
                symbol="BTCUSD", side=BUY, type=MARKET, volume="0.01", take_profit="1000"
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PRICE_LEVEL",
            ["take_profit"],
        ),
        (
            pb.PlaceOrderRequest(
                symbol="BTCUSD", side=BUY, type=LIMIT, volume="0.01", price="70000"
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PRICE_LEVEL",
            ["price"],
        ),
        (
            pb.PlaceOrderRequest(symbol="BTCUSD", side=BUY, type=MARKET, volume="1"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_MARGIN",
            [],
        ),
        (
            pb.PlaceOrderRequest(symbol="NOPE", side=BUY, type=MARKET, volume="1"),
            grpc.StatusCode.NOT_FOUND,
            "UNKNOWN_SYMBOL",
            [],
        ),
    ]
    for request, code, reason, fields in cases:
        assert await fails(stub.PlaceOrder(request, metadata=md)) == (code, reason, fields)
    assert (await stub.ListPositions(pb.ListPositionsRequest(), metadata=md)).positions == []
    # No token, another shard's token.
    code, _, _ = await fails(stub.GetAccount(pb.GetAccountRequest()))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, reason, _ = await fails(
        stub.GetAccount(pb.GetAccountRequest(), metadata=trading.md(user(), shard=7))
    )
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "WRONG_SHARD")


async def test_stale_quote_refuses_a_market_order(trading: Trading) -> None:
    stub, md = trading.stub, trading.md(user())
    await stub.Deposit(pb.DepositRequest(amount="1000"), metadata=md)
    await trading.quote(
        "SOLUSD", "150.000", "150.050", at=datetime.now(UTC) - timedelta(seconds=60)
    )
    code, reason, _ = await fails(
        stub.PlaceOrder(
            pb.PlaceOrderRequest(symbol="SOLUSD", side=BUY, type=MARKET, volume="1"), metadata=md
        )
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "STALE_QUOTE")
    await trading.quote("SOLUSD", "150.000", "150.050")
    placed = await stub.PlaceOrder(
        pb.PlaceOrderRequest(symbol="SOLUSD", side=BUY, type=MARKET, volume="1"), metadata=md
    )
    assert placed.order.fill_price == "150.05"


async def test_stream_account_sends_a_snapshot_then_only_own_events(trading: Trading) -> None:
    stub = trading.stub
    alice, bob = trading.md(user()), trading.md(user())
    await stub.GetAccount(pb.GetAccountRequest(), metadata=bob)
    stream = stub.StreamAccount(pb.StreamAccountRequest(), metadata=alice)
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.event.type == pb.ACCOUNT_EVENT_TYPE_ACCOUNT_SNAPSHOT
    alice_id = first.event.account_id
    await stub.Deposit(pb.DepositRequest(amount="50"), metadata=bob)
    await stub.Deposit(pb.DepositRequest(amount="25"), metadata=alice)
    second = await asyncio.wait_for(stream.read(), 10)
    assert second.event.type == pb.ACCOUNT_EVENT_TYPE_BALANCE_CHANGED
    assert second.event.account_id == alice_id
    assert second.event.ledger_entry.amount == "25.00"
    assert second.event.account.balance == "25.00"
    assert second.event.sequence > first.event.sequence
    stream.cancel()


async def test_events_reach_kafka_in_sequence(trading: Trading, kafka_bootstrap: str) -> None:
    stub, md = trading.stub, trading.md(user())
    for amount in ("1", "2", "3"):
        await stub.Deposit(pb.DepositRequest(amount=amount), metadata=md)
    account_id = (await stub.GetAccount(pb.GetAccountRequest(), metadata=md)).account.account_id
    consumer = make_consumer(
        kafka_bootstrap, trading.events_topic, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[pb.AccountEvent] = []
    try:
        async with asyncio.timeout(20):
            while len(seen) < 3:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for message in messages:
                        if message.key == account_id.encode():
                            seen.append(pb.AccountEvent.FromString(message.value))
    finally:
        await consumer.stop()
    assert [e.ledger_entry.amount for e in seen] == ["1.00", "2.00", "3.00"]
    assert [e.sequence for e in seen] == sorted(e.sequence for e in seen)


async def test_idempotent_retry_survives_a_restart(
    start_trading: StartTrading, db_pool: AsyncConnectionPool
) -> None:
    first_engine = await start_trading(1)
    md = first_engine.md(user())
    await first_engine.quote("XAUUSD", "2400.00", "2400.20")
    await first_engine.stub.Deposit(pb.DepositRequest(amount="10000"), metadata=md)
    request = pb.PlaceOrderRequest(
        symbol="XAUUSD", side=BUY, type=MARKET, volume="0.10", client_order_id="retry-me-1"
    )
    first = await first_engine.stub.PlaceOrder(request, metadata=md)
    again = await first_engine.stub.PlaceOrder(request, metadata=md)
    assert again.order.order_id == first.order.order_id
    assert again.position.position_id == first.position.position_id
    await first_engine.stop()

    second_engine = await start_trading(1, quotes_topic=first_engine.quotes_topic)
    await second_engine.quote("XAUUSD", "2401.00", "2401.20")
    after = await second_engine.stub.PlaceOrder(request, metadata=md)
    assert after.order.order_id == first.order.order_id
    assert after.order.fill_price == "2400.2"
    assert after.position.position_id == first.position.position_id
    changed = pb.PlaceOrderRequest()
    changed.CopyFrom(request)
    changed.volume = "0.20"
    code, reason, _ = await fails(second_engine.stub.PlaceOrder(changed, metadata=md))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED")
    positions = await second_engine.stub.ListPositions(pb.ListPositionsRequest(), metadata=md)
    assert [p.position_id for p in positions.positions] == [first.position.position_id]
    account = await second_engine.stub.GetAccount(pb.GetAccountRequest(), metadata=md)
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM trading_orders WHERE account_id = %s",
            (int(account.account.account_id),),
        )
        assert await cur.fetchone() == (1,)

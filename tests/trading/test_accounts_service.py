"""Several accounts per user over real gRPC, PostgreSQL and Kafka: account_id on every RPC,
isolation of one user's accounts, another user's account, the account RPCs, commission,
withdrawals and the transaction history as committed, and all of it after a restart."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
from exness.trading.v1 import trading_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp
from psycopg_pool import AsyncConnectionPool

from tests.trading.conftest import StartTrading, Trading
from tests.trading.support import account_types, typed_engine
from tests.trading.test_service import fails, ledger_and_balance

# Its own engine, restarted mid-test: other modules' engines own shards 0 to 4.
SHARD = 5
SEEDED = ("BTCUSD", "ETHUSD", "SOLUSD", "EURUSD", "XAUUSD")
BUY, SELL = pb.ORDER_SIDE_BUY, pb.ORDER_SIDE_SELL
MARKET, LIMIT = pb.ORDER_TYPE_MARKET, pb.ORDER_TYPE_LIMIT


def stamp(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


async def test_account_types_are_listed_from_the_table(trading: Trading) -> None:
    listed = (await trading.stub.ListAccountTypes(pb.ListAccountTypesRequest())).account_types
    assert [(t.name, t.display_name) for t in listed] == [
        ("standard", "Standard"),
        ("pro", "Pro"),
        ("raw_spread", "Raw Spread"),
        ("zero", "Zero"),
    ]
    assert [(t.margin_call_level, t.stop_out_level, t.max_leverage) for t in listed] == [
        ("60", "0", 2000),
        ("30", "0", 2000),
        ("30", "0", 2000),
        ("30", "0", 2000),
    ]
    terms = {
        (t.name, x.symbol): (Decimal(x.spread_markup), Decimal(x.commission_per_lot))
        for t in listed
        for x in t.terms
        if x.symbol in SEEDED
    }
    assert terms[("standard", "EURUSD")] == (Decimal("0.0001"), Decimal(0))  # the default
    # The rule tests' figures (tests/trading/support.py) are the seeded ones.
    spec = typed_engine()[0].instruments
    assert terms == {
        (name, symbol): (t.markup(spec[symbol]), t.terms_of(symbol).commission_per_lot)
        for name, t in account_types().items()
        for symbol in SEEDED
    }


async def test_two_accounts_of_one_user_never_see_each_other(
    start_trading: StartTrading, db_pool: AsyncConnectionPool
) -> None:
    engine = await start_trading(SHARD)
    stub, user = engine.stub, str(uuid.uuid4())
    md = engine.md(user, SHARD)
    await engine.quote("BTCUSD", "65000", "65010")
    created = await stub.CreateAccount(
        pb.CreateAccountRequest(account_type="raw_spread", kind=pb.ACCOUNT_KIND_REAL), metadata=md
    )
    b = created.account
    assert (b.account_type, b.kind, b.is_default, b.balance) == (
        "raw_spread",
        pb.ACCOUNT_KIND_REAL,
        False,
        "0.00",
    )
    listed = (await stub.ListAccounts(pb.ListAccountsRequest(), metadata=md)).accounts
    assert [(x.account_type, x.is_default) for x in listed] == [
        ("standard", True),
        ("raw_spread", False),
    ]
    a_id, b_id = listed[0].account_id, b.account_id
    await stub.Deposit(pb.DepositRequest(amount="10000"), metadata=md)  # the default: A
    await stub.Deposit(pb.DepositRequest(amount="5000", account_id=b_id), metadata=md)

    stream_b = stub.StreamAccount(pb.StreamAccountRequest(account_id=b_id), metadata=md)
    snapshot = await asyncio.wait_for(stream_b.read(), 10)
    assert snapshot.event.account_id == b_id
    assert snapshot.event.account.balance == "5000.00"

    in_a = await stub.PlaceOrder(
        pb.PlaceOrderRequest(symbol="BTCUSD", side=BUY, type=MARKET, volume="0.10"), metadata=md
    )
    pending_a = await stub.PlaceOrder(
        pb.PlaceOrderRequest(symbol="BTCUSD", side=BUY, type=LIMIT, volume="0.10", price="60000"),
        metadata=md,
    )
    in_b = await stub.PlaceOrder(
        pb.PlaceOrderRequest(symbol="BTCUSD", side=BUY, type=MARKET, volume="1", account_id=b_id),
        metadata=md,
    )
    # Raw Spread: no markup (the published quote has 10.00): 5.00 inside on each side; and
    # USD 3.25 per lot per side of commission.
    assert in_b.order.fill_price == "65005"
    assert in_b.position.commission == "-3.25"
    assert in_b.position.account_id == b_id
    assert in_a.order.fill_price == "65010"
    assert in_a.position.commission == "0.00"

    # B's stream carries B's events only (A's orders came first).
    event = await asyncio.wait_for(stream_b.read(), 10)
    assert event.event.account_id == b_id
    assert event.event.order.order_id == in_b.order.order_id
    stream_b.cancel()

    closed_b = await stub.ClosePosition(
        pb.ClosePositionRequest(position_id=in_b.position.position_id, account_id=b_id),
        metadata=md,
    )
    assert closed_b.trade.commission == "-6.50"
    assert closed_b.trade.realized_pnl == "0.00"  # 65005 both ways

    def ids(items: object, name: str) -> set[str]:
        return {getattr(x, name) for x in items}  # type: ignore[attr-defined]

    positions_a = (await stub.ListPositions(pb.ListPositionsRequest(), metadata=md)).positions
    positions_b = (
        await stub.ListPositions(pb.ListPositionsRequest(account_id=b_id), metadata=md)
    ).positions
    assert ids(positions_a, "position_id") == {in_a.position.position_id}
    assert positions_b == []
    orders_a = (await stub.ListOrders(pb.ListOrdersRequest(account_id=a_id), metadata=md)).orders
    orders_b = (await stub.ListOrders(pb.ListOrdersRequest(account_id=b_id), metadata=md)).orders
    assert ids(orders_a, "order_id") == {pending_a.order.order_id}
    assert orders_b == []
    trades_a = (await stub.ListTrades(pb.ListTradesRequest(), metadata=md)).trades
    trades_b = (await stub.ListTrades(pb.ListTradesRequest(account_id=b_id), metadata=md)).trades
    assert trades_a == []
    assert [(t.trade_id, t.commission) for t in trades_b] == [(closed_b.trade.trade_id, "-6.50")]
    history_b = (
        await stub.ListTransactions(pb.ListTransactionsRequest(account_id=b_id), metadata=md)
    ).entries
    assert [(e.kind, e.amount, e.balance_after, e.account_id) for e in history_b] == [
        (pb.LEDGER_ENTRY_KIND_COMMISSION, "-3.25", "4993.50", b_id),
        (pb.LEDGER_ENTRY_KIND_COMMISSION, "-3.25", "4996.75", b_id),
        (pb.LEDGER_ENTRY_KIND_DEPOSIT, "5000.00", "5000.00", b_id),
    ]
    history_a = (await stub.ListTransactions(pb.ListTransactionsRequest(), metadata=md)).entries
    assert [(e.kind, e.amount) for e in history_a] == [(pb.LEDGER_ENTRY_KIND_DEPOSIT, "10000.00")]
    account_b = (await stub.GetAccount(pb.GetAccountRequest(account_id=b_id), metadata=md)).account
    assert (account_b.balance, account_b.margin) == ("4993.50", "0.00")
    assert await ledger_and_balance(db_pool, b_id) == (Decimal("4993.50"), Decimal("4993.50"))

    # A's position and order are not B's to touch.
    code, reason, _ = await fails(
        stub.ClosePosition(
            pb.ClosePositionRequest(position_id=in_a.position.position_id, account_id=b_id),
            metadata=md,
        )
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "POSITION_NOT_FOUND")
    code, reason, _ = await fails(
        stub.CancelOrder(
            pb.CancelOrderRequest(order_id=pending_a.order.order_id, account_id=b_id), metadata=md
        )
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND")

    # Withdrawals within the free margin; then after a restart everything is as committed.
    code, reason, _ = await fails(
        stub.Withdraw(pb.WithdrawRequest(amount="4993.51", account_id=b_id), metadata=md)
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FREE_MARGIN")
    withdrawn = await stub.Withdraw(
        pb.WithdrawRequest(amount="993.50", account_id=b_id), metadata=md
    )
    assert (withdrawn.entry.kind, withdrawn.account.balance) == (
        pb.LEDGER_ENTRY_KIND_WITHDRAWAL,
        "4000.00",
    )
    await engine.stop()
    again = await start_trading(SHARD, quotes_topic=engine.quotes_topic)
    listed = (await again.stub.ListAccounts(pb.ListAccountsRequest(), metadata=md)).accounts
    assert [(x.account_id, x.account_type, x.kind, x.balance) for x in listed] == [
        (a_id, "standard", pb.ACCOUNT_KIND_DEMO, "10000.00"),
        (b_id, "raw_spread", pb.ACCOUNT_KIND_REAL, "4000.00"),
    ]


async def test_another_users_account_is_not_found(trading: Trading) -> None:
    stub = trading.stub
    alice, bob = trading.md(str(uuid.uuid4())), trading.md(str(uuid.uuid4()))
    theirs = (
        await stub.CreateAccount(pb.CreateAccountRequest(account_type="pro"), metadata=bob)
    ).account
    for call in (
        stub.GetAccount(pb.GetAccountRequest(account_id=theirs.account_id), metadata=alice),
        stub.Deposit(pb.DepositRequest(amount="1", account_id=theirs.account_id), metadata=alice),
        stub.ListTransactions(
            pb.ListTransactionsRequest(account_id=theirs.account_id), metadata=alice
        ),
        stub.GetAccount(pb.GetAccountRequest(account_id="99999999"), metadata=alice),
    ):
        code, reason, _ = await fails(call)
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    code, reason, fields = await fails(
        stub.CreateAccount(pb.CreateAccountRequest(account_type="gold"), metadata=alice)
    )
    assert (code, reason, fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNKNOWN_ACCOUNT_TYPE",
        ["account_type"],
    )
    still = (await stub.GetAccount(pb.GetAccountRequest(), metadata=bob)).account
    assert still.balance == "0.00"


async def test_transactions_and_trades_page_and_filter_by_time(trading: Trading) -> None:
    stub, md = trading.stub, trading.md(str(uuid.uuid4()))
    before = datetime.now(UTC) - timedelta(seconds=1)
    for amount in ("1", "2", "3"):
        await stub.Deposit(pb.DepositRequest(amount=amount), metadata=md)
    await asyncio.sleep(0.05)
    middle = datetime.now(UTC)
    await stub.Deposit(pb.DepositRequest(amount="4"), metadata=md)
    first = await stub.ListTransactions(pb.ListTransactionsRequest(page_size=2), metadata=md)
    assert [e.amount for e in first.entries] == ["4.00", "3.00"]
    assert [e.balance_after for e in first.entries] == ["10.00", "6.00"]
    second = await stub.ListTransactions(
        pb.ListTransactionsRequest(page_size=2, page_token=first.next_page_token), metadata=md
    )
    assert [e.amount for e in second.entries] == ["2.00", "1.00"]
    assert second.next_page_token == ""
    early = await stub.ListTransactions(
        pb.ListTransactionsRequest(start_time=stamp(before), end_time=stamp(middle)), metadata=md
    )
    assert [e.amount for e in early.entries] == ["3.00", "2.00", "1.00"]
    late = await stub.ListTransactions(
        pb.ListTransactionsRequest(start_time=stamp(middle)), metadata=md
    )
    assert [e.amount for e in late.entries] == ["4.00"]
    trades = await stub.ListTrades(pb.ListTradesRequest(end_time=stamp(before)), metadata=md)
    assert list(trades.trades) == []
    code, _, fields = await fails(
        stub.ListTransactions(
            pb.ListTransactionsRequest(start_time=stamp(middle), end_time=stamp(before)),
            metadata=md,
        )
    )
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["start_time"])

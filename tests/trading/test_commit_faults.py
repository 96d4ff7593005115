"""The group-commit path under faults, through the real service, PostgreSQL and broker: callers
that give up mid-call, and a commit that PostgreSQL refuses."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
import pytest
from exness.trading.v1 import trading_pb2 as pb
from exness.trading.v1 import trading_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from tests.trading.conftest import Trading

BUY, MARKET = pb.ORDER_SIDE_BUY, pb.ORDER_TYPE_MARKET
T = TypeVar("T")


def user() -> str:
    return str(uuid.uuid4())


def btc(volume: str = "0.01", key: str = "") -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        symbol="BTCUSD", side=BUY, type=MARKET, volume=volume, client_order_id=key
    )


def hurried_burst(port: int, users: list[tuple[tuple[str, str], ...]]) -> list[grpc.StatusCode]:
    """120 PlaceOrder calls at once with deadlines of 2-30 ms; the status of each."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = trading_pb2_grpc.TradingServiceStub(channel)
        calls = [
            stub.PlaceOrder.future(
                btc(), metadata=users[n % len(users)], timeout=(2 + n % 29) / 1000
            )
            for n in range(120)
        ]
        codes = []
        for call in calls:
            try:
                call.result()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
        return codes


def committer_alive(trading: Trading) -> bool:
    task = trading.app.task("committer")
    return not task.done()


async def test_calls_that_give_up_never_harm_the_commit_path(trading: Trading) -> None:
    """120 PlaceOrder calls with 2-30 ms deadlines (as an impatient client sends them), while
    patient callers trade beside them: the committer survives, and every later call is answered."""
    stub = trading.stub
    await trading.quote("BTCUSD", "65000", "65010")
    impatient = [trading.md(user()) for _ in range(8)]
    patient = [trading.md(user()) for _ in range(4)]
    for md in [*impatient, *patient]:
        await stub.Deposit(pb.DepositRequest(amount="100000"), metadata=md, timeout=10)

    async def steady(md: tuple[tuple[str, str], ...]) -> int:
        done = 0
        for _ in range(10):
            await stub.PlaceOrder(btc(), metadata=md, timeout=10)
            done += 1
        return done

    # The impatient client runs on its own thread and channel, as another process would: its
    # deadlines expire while the engine is working on its calls, not before it sees them.
    burst = asyncio.to_thread(hurried_burst, trading.server.bound_port, impatient)
    codes, *steady_done = await asyncio.gather(burst, *(steady(md) for md in patient))
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}, codes
    assert grpc.StatusCode.DEADLINE_EXCEEDED in codes, "no call gave up: the test proves nothing"
    assert steady_done == [10] * len(patient)

    # After the burst the commit path still answers everyone, in a new transaction.
    for md in [*impatient, *patient]:
        placed = await stub.PlaceOrder(btc(), metadata=md, timeout=10)
        assert placed.order.status == pb.ORDER_STATUS_FILLED
    assert committer_alive(trading)
    # What the committer tells metrics about its last transaction (a fill: several events).
    assert trading.app.committer.last_batch_size >= 2
    assert trading.app.committer.last_commit_s > 0


@contextlib.asynccontextmanager
async def refused_writes(
    pool: AsyncConnectionPool, table: str, account_id: str
) -> AsyncIterator[None]:
    """PostgreSQL refuses every new row of `table` for one account (a constraint that holds for
    old rows only), so the group commit carrying it fails; lifted on exit."""
    name = f"fault_{uuid.uuid4().hex[:8]}"
    async with pool.connection() as conn:
        await conn.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK (account_id <> {int(account_id)})"
            " NOT VALID"
        )
    try:
        yield
    finally:
        async with pool.connection() as conn:
            await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")


async def until_accepting(call: Callable[[], Awaitable[T]]) -> T:
    """`call`, repeated while the engine answers UNAVAILABLE (rebuilding its memory)."""
    for _ in range(200):
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        await asyncio.sleep(0.05)
    raise AssertionError("the engine never accepted commands again")


async def open_position_ids(pool: AsyncConnectionPool, account_id: str) -> set[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT position_id::text FROM trading_positions"
            " WHERE account_id = %s AND closed_at IS NULL",
            (int(account_id),),
        )
        return {row[0] for row in await cur.fetchall()}


async def test_a_close_whose_commit_failed_is_never_answered_from_memory(
    trading: Trading, db_pool: AsyncConnectionPool
) -> None:
    """The commit of a close fails: the caller hears UNAVAILABLE, the retry finds the position
    still open (as the database has it) and closes it, and memory and database agree."""
    stub, md = trading.stub, trading.md(user())
    await trading.quote("BTCUSD", "65000", "65010")
    account = (await stub.Deposit(pb.DepositRequest(amount="10000"), metadata=md)).account
    placed = await stub.PlaceOrder(btc("0.10"), metadata=md)
    position_id = placed.position.position_id
    close = pb.ClosePositionRequest(position_id=position_id)

    async with refused_writes(db_pool, "trading_trades", account.account_id):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.ClosePosition(close, metadata=md, timeout=10)
        assert await open_position_ids(db_pool, account.account_id) == {position_id}

    # The retry is answered from what was committed: the position is still open, so it closes.
    closed = await until_accepting(lambda: stub.ClosePosition(close, metadata=md, timeout=10))
    assert closed.trade.position_id == position_id
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await open_position_ids(db_pool, account.account_id) == set()
    listed = await stub.ListPositions(pb.ListPositionsRequest(), metadata=md)
    assert list(listed.positions) == []
    assert committer_alive(trading)


async def test_a_retried_order_after_a_failed_commit_is_placed_once(
    trading: Trading, db_pool: AsyncConnectionPool
) -> None:
    """An order whose commit failed, retried with its client_order_id, is placed exactly once;
    other accounts trade normally once memory is rebuilt."""
    stub, md = trading.stub, trading.md(user())
    await trading.quote("BTCUSD", "65000", "65010")
    account = (await stub.Deposit(pb.DepositRequest(amount="10000"), metadata=md)).account
    key = f"k-{uuid.uuid4().hex[:8]}"

    async with refused_writes(db_pool, "trading_orders", account.account_id):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.PlaceOrder(btc(key=key), metadata=md, timeout=10)

    first = await until_accepting(lambda: stub.PlaceOrder(btc(key=key), metadata=md, timeout=10))
    retry = await stub.PlaceOrder(btc(key=key), metadata=md, timeout=10)
    assert retry.order.order_id == first.order.order_id
    assert first.order.status == pb.ORDER_STATUS_FILLED
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM trading_orders WHERE account_id = %s AND client_order_id = %s",
            (int(account.account_id), key),
        )
        assert await cur.fetchone() == (1,)
    assert await open_position_ids(db_pool, account.account_id) == {first.position.position_id}
    other = trading.md(user())
    await stub.Deposit(pb.DepositRequest(amount="1000"), metadata=other, timeout=10)
    placed = await stub.PlaceOrder(btc(), metadata=other, timeout=10)
    assert placed.order.status == pb.ORDER_STATUS_FILLED
    assert committer_alive(trading)

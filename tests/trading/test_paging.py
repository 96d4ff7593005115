"""Pending-order cap and paged lists through the real service: ListOrders, ListPositions and
ListTrades page the same way (page_size, page_token, newest first), and a bad token is refused
naming the field."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from exness.trading.v1 import trading_pb2 as pb

from tests.support.grpc_errors import failure_of
from tests.trading.conftest import StartTrading, Trading

BUY, SELL = pb.ORDER_SIDE_BUY, pb.ORDER_SIDE_SELL
LIMIT_PENDING = 7  # the cap of this module's engine
SHARD = 4  # its own engine: other modules' engines own shards 0 to 3


@pytest.fixture(scope="module")
async def capped(start_trading: StartTrading) -> Trading:
    handle = await start_trading(SHARD, max_pending_orders=LIMIT_PENDING)
    await handle.quote("BTCUSD", "65000", "65010")
    return handle


def limit_order(price: str) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        symbol="BTCUSD", side=BUY, type=pb.ORDER_TYPE_LIMIT, volume="0.01", price=price
    )


async def all_pages(
    call: Callable[..., Awaitable[Any]], request_type: Any, field: str, md: Any, size: int
) -> list[list[str]]:
    """Every page of a List call, as the ids on each page."""
    pages: list[list[str]] = []
    token = ""
    while True:
        reply = await call(request_type(page_size=size, page_token=token), metadata=md)
        items = getattr(reply, field)
        pages.append([getattr(i, f"{field[:-1]}_id") for i in items])
        token = reply.next_page_token
        if not token:
            return pages
        assert len(pages) < 50, "paging never ends"


async def test_pending_orders_are_capped_per_account(capped: Trading) -> None:
    stub, md = capped.stub, capped.md(str(uuid.uuid4()))
    await stub.Deposit(pb.DepositRequest(amount="100"), metadata=md)
    for n in range(LIMIT_PENDING):
        await stub.PlaceOrder(limit_order(f"{60000 + n}"), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.PlaceOrder(limit_order("59000"), metadata=md)
    failure = failure_of(exc.value)
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "PENDING_ORDER_LIMIT",
    )
    listed = await stub.ListOrders(pb.ListOrdersRequest(page_size=500), metadata=md)
    assert len(listed.orders) == LIMIT_PENDING  # the refused order changed nothing
    await stub.CancelOrder(pb.CancelOrderRequest(order_id=listed.orders[0].order_id), metadata=md)
    await stub.PlaceOrder(limit_order("59000"), metadata=md)


async def test_orders_positions_and_trades_page_alike(capped: Trading) -> None:
    stub, md = capped.stub, capped.md(str(uuid.uuid4()))
    await capped.quote("BTCUSD", "65000", "65010")
    await stub.Deposit(pb.DepositRequest(amount="100000"), metadata=md)
    orders = [
        (await stub.PlaceOrder(limit_order(f"{60000 + n}"), metadata=md)).order.order_id
        for n in range(LIMIT_PENDING)
    ]
    positions = []
    for _ in range(7):
        placed = await stub.PlaceOrder(
            pb.PlaceOrderRequest(
                symbol="BTCUSD", side=SELL, type=pb.ORDER_TYPE_MARKET, volume="0.01"
            ),
            metadata=md,
        )
        positions.append(placed.position.position_id)
    trades = []
    for position_id in positions[:5]:
        closed = await stub.ClosePosition(
            pb.ClosePositionRequest(position_id=position_id), metadata=md
        )
        trades.append(closed.trade.trade_id)

    def newest_first(ids: list[str]) -> list[str]:
        return sorted(ids, key=int, reverse=True)

    order_pages = await all_pages(stub.ListOrders, pb.ListOrdersRequest, "orders", md, 3)
    assert order_pages == [newest_first(orders)[i : i + 3] for i in (0, 3, 6)]
    position_pages = await all_pages(
        stub.ListPositions, pb.ListPositionsRequest, "positions", md, 1
    )
    assert position_pages == [[p] for p in newest_first(positions[5:])]
    trade_pages = await all_pages(stub.ListTrades, pb.ListTradesRequest, "trades", md, 2)
    assert trade_pages == [newest_first(trades)[i : i + 2] for i in (0, 2, 4)]
    # Default page size: everything here fits in one page.
    assert len((await stub.ListOrders(pb.ListOrdersRequest(), metadata=md)).orders) == 7


@pytest.mark.parametrize("token", ["²", "١٢", "12a", "-5"])
@pytest.mark.parametrize(
    ("method", "request_type"),
    [
        ("ListOrders", pb.ListOrdersRequest),
        ("ListPositions", pb.ListPositionsRequest),
        ("ListTrades", pb.ListTradesRequest),
    ],
)
async def test_a_bad_page_token_is_refused_naming_the_field(
    capped: Trading, method: str, request_type: Any, token: str
) -> None:
    md = capped.md(str(uuid.uuid4()))
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await getattr(capped.stub, method)(request_type(page_token=token), metadata=md)
    failure = failure_of(exc.value)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(failure.fields) == ["page_token"]

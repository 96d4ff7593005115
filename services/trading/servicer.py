"""exness.trading.v1.TradingService over the in-memory engine.

Each handler: the caller from the verified token (never from the body), the shard check, the
engine call (synchronous, in order), then `_committed()` so the answer, an engine refusal too,
leaves only after the effects it rests on are committed. While the committer rebuilds memory
after a failed write, calls are refused UNAVAILABLE (ENGINE_UNAVAILABLE).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol, TypeVar

import grpc
from exness.trading.v1 import trading_pb2 as pb
from exness.trading.v1 import trading_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from kit.decimals import parse_decimal
from kit.refusal import Refusal
from kit.rpc.errors import (
    ServiceError,
    failed_precondition,
    invalid_field,
    not_found,
    refusal_error,
    unavailable,
)
from kit.rpc.identity import current_caller
from services.trading import codec, store
from services.trading.committer import CommitFailed, Committer
from services.trading.engine import Engine, OrderRequest
from services.trading.model import Account, AccountKind, EventType, OrderType, Position, Side
from services.trading.streams import AccountStreams

SERVICE_NAME = "exness.trading.v1.TradingService"
DEFAULT_PAGE_SIZE = 50
# UNAVAILABLE while the engine rebuilds its memory after a failed commit.
ENGINE_UNAVAILABLE = "ENGINE_UNAVAILABLE"

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _decimal(text: str) -> Decimal | None:
    # Shape already checked by the request pipeline against the proto's rules.
    return parse_decimal(text) if text else None


# Ids are issued as decimal numbers: anything else is malformed input, not an unknown id.
_MALFORMED_ID = "is not an id issued by this API (decimal digits)"


def _id(text: str) -> int | None:
    # isascii(): str.isdigit() also takes digits int() refuses, such as "²".
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None


class TradingServicer(trading_pb2_grpc.TradingServiceServicer):
    def __init__(
        self,
        engine: Engine,
        committer: Committer,
        pool: AsyncConnectionPool,
        streams: AccountStreams,
    ) -> None:
        self.engine = engine
        self.committer = committer
        self.pool = pool
        self.streams = streams

    def _account(self, account_id: str = "") -> Account:
        """The caller's account named by `account_id` (their default one when empty), once
        this engine may act on it. Every account lives on its user's shard."""
        if not self.committer.accepting:
            raise unavailable(
                ENGINE_UNAVAILABLE, "the engine is restoring its state; retry shortly"
            )
        caller = current_caller()
        if caller.shard != self.engine.shard_id:
            raise unavailable(
                "WRONG_SHARD",
                f"this engine is shard {self.engine.shard_id}; your account is on shard "
                f"{caller.shard}",
                shard=str(caller.shard),
            )
        if not account_id:
            return self.engine.account_of(caller.user_id, _now())
        number = _id(account_id)
        if number is None:
            raise invalid_field("account_id", _MALFORMED_ID)
        try:
            return self.engine.account_for(caller.user_id, number, _now())
        except Refusal as refusal:
            raise refusal_error(refusal) from None

    def _caller_user(self) -> str:
        """The caller's user id, once this engine may act for them."""
        self._account()  # the default account exists once the user has any
        return current_caller().user_id

    async def _committed(self) -> None:
        """Waits until everything this call saw or did is committed."""
        try:
            await self.committer.barrier()
        except CommitFailed as exc:
            raise unavailable(
                ENGINE_UNAVAILABLE,
                "the engine could not save the state this call depends on; retry (with the same"
                " client_order_id)",
            ) from exc

    async def _apply(
        self, command: Callable[[Account], T], account_id: str = ""
    ) -> tuple[Account, T]:
        """Runs an engine command on the caller's account `account_id`. A refusal may rest on
        effects still in flight (e.g. a close whose commit fails): it is answered only once
        they are committed."""
        account = self._account(account_id)
        try:
            return account, command(account)
        except Refusal as refusal:
            await self._committed()
            raise refusal_error(refusal) from None

    def _view(self, account: Account) -> pb.Account:
        return codec.account_pb(self.engine.view(account))

    def _position(self, position: Position) -> pb.Position:
        account_type = self.engine.accounts[position.account_id].account_type
        return codec.position_pb(position, self.engine.quote(position.symbol, account_type))

    async def GetAccount(
        self, request: pb.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAccountResponse:
        account = self._account(request.account_id)
        await self._committed()
        return pb.GetAccountResponse(account=self._view(account))

    async def ListAccounts(
        self, request: pb.ListAccountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccountsResponse:
        user_id = self._caller_user()
        await self._committed()
        return pb.ListAccountsResponse(
            accounts=[self._view(a) for a in self.engine.accounts_of(user_id)]
        )

    async def CreateAccount(
        self, request: pb.CreateAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateAccountResponse:
        user_id = self._caller_user()
        kind = AccountKind.REAL if request.kind == pb.ACCOUNT_KIND_REAL else AccountKind.DEMO
        try:
            account = self.engine.create_account(
                user_id, request.account_type, kind, request.leverage, request.swap_free, _now()
            )
        except Refusal as refusal:
            await self._committed()
            raise refusal_error(refusal) from None
        view = self._view(account)
        await self._committed()
        return pb.CreateAccountResponse(account=view)

    async def ListAccountTypes(
        self, request: pb.ListAccountTypesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccountTypesResponse:
        return pb.ListAccountTypesResponse(
            account_types=[
                codec.account_type_pb(t, self.engine.instruments)
                for t in self.engine.account_types.values()
            ]
        )

    async def Withdraw(
        self, request: pb.WithdrawRequest, context: grpc.aio.ServicerContext
    ) -> pb.WithdrawResponse:
        amount = parse_decimal(request.amount)
        account, entry = await self._apply(
            lambda a: self.engine.withdraw(a, amount, _now()), request.account_id
        )
        view = self._view(account)
        await self._committed()
        return pb.WithdrawResponse(account=view, entry=codec.ledger_pb(entry))

    async def ListTransactions(
        self, request: pb.ListTransactionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTransactionsResponse:
        account = self._account(request.account_id)
        before, size = _page(request)
        start, end = _window(request)
        await self._committed()
        entries = await store.list_ledger(
            self.pool, account.account_id, before_id=before, limit=size + 1, start=start, end=end
        )
        token = str(entries[size - 1].entry_id) if len(entries) > size else ""
        return pb.ListTransactionsResponse(
            entries=[codec.ledger_pb(e) for e in entries[:size]], next_page_token=token
        )

    async def Deposit(
        self, request: pb.DepositRequest, context: grpc.aio.ServicerContext
    ) -> pb.DepositResponse:
        amount = parse_decimal(request.amount)
        account, entry = await self._apply(
            lambda a: self.engine.deposit(a, amount, _now()), request.account_id
        )
        view = self._view(account)
        await self._committed()
        return pb.DepositResponse(account=view, entry=codec.ledger_pb(entry))

    async def SetLeverage(
        self, request: pb.SetLeverageRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetLeverageResponse:
        account, _ = await self._apply(
            lambda a: self.engine.set_leverage(a, request.leverage, _now()), request.account_id
        )
        view = self._view(account)
        await self._committed()
        return pb.SetLeverageResponse(account=view)

    async def PlaceOrder(
        self, request: pb.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlaceOrderResponse:
        expire_at = (
            request.expire_time.ToDatetime(tzinfo=UTC) if request.HasField("expire_time") else None
        )
        order_request = OrderRequest(
            symbol=request.symbol,
            side=Side(request.side),
            type=OrderType(request.type),
            volume=_decimal(request.volume),
            margin=_decimal(request.margin),
            leverage=request.leverage,
            price=_decimal(request.price),
            stop_loss=_decimal(request.stop_loss),
            take_profit=_decimal(request.take_profit),
            client_order_id=request.client_order_id,
            expire_at=expire_at,
            trailing_stop=_decimal(request.trailing_stop),
        )
        account, result = await self._apply(
            lambda a: self.engine.place_order(a, order_request, _now()), request.account_id
        )
        if result.duplicate:
            await self._committed()
            return await self._first_result(account, result.order.order_id)
        # result.order is a snapshot or a filled order: it never changes again.
        response = pb.PlaceOrderResponse(order=codec.final_order_pb(result.order))
        if result.position is not None:
            response.position.CopyFrom(self._position(result.position))
        await self._committed()
        return response

    async def _first_result(self, account: Account, order_id: int) -> pb.PlaceOrderResponse:
        """A retry's answer: the order the key first placed, and its position if still open."""
        order = await store.find_order(self.pool, account.account_id, order_id)
        if order is None:  # pragma: no cover - the key map and the table are written together
            raise ServiceError(grpc.StatusCode.INTERNAL, "INTERNAL", "idempotency record lost")
        response = pb.PlaceOrderResponse(order=codec.order_pb(order))
        if order.position_id is not None:
            position = self.engine.open_position(account, order.position_id)
            if position is not None:
                response.position.CopyFrom(self._position(position))
        return response

    async def ListOrders(
        self, request: pb.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOrdersResponse:
        account = self._account(request.account_id)
        before, size = _page(request)
        await self._committed()
        orders = self.engine.pending_orders(account, before_id=before, limit=size + 1)
        return pb.ListOrdersResponse(
            orders=[codec.order_pb(o) for o in orders[:size]],
            next_page_token=str(orders[size - 1].order_id) if len(orders) > size else "",
        )

    async def CancelOrder(
        self, request: pb.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelOrderResponse:
        account = self._account(request.account_id)
        order_id = _id(request.order_id)
        if order_id is None:
            raise invalid_field("order_id", _MALFORMED_ID)
        if self.engine.has_pending_order(account, order_id):
            _, order = await self._apply(
                lambda a: self.engine.cancel_order(a, order_id, _now()), request.account_id
            )
            await self._committed()
            return pb.CancelOrderResponse(order=codec.order_pb(order))
        await self._committed()
        if await store.find_order(self.pool, account.account_id, order_id):
            raise failed_precondition(
                "ORDER_NOT_PENDING", "the order is no longer pending", order_id=request.order_id
            )
        raise not_found(
            "ORDER_NOT_FOUND", "no such order on your account", order_id=request.order_id
        )

    async def ListPositions(
        self, request: pb.ListPositionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPositionsResponse:
        account = self._account(request.account_id)
        before, size = _page(request)
        await self._committed()
        positions = self.engine.open_positions(account, before_id=before, limit=size + 1)
        return pb.ListPositionsResponse(
            positions=[self._position(p) for p in positions[:size]],
            next_page_token=str(positions[size - 1].position_id) if len(positions) > size else "",
        )

    async def ModifyPosition(
        self, request: pb.ModifyPositionRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModifyPositionResponse:
        stop_loss, take_profit = _decimal(request.stop_loss), _decimal(request.take_profit)
        trailing_stop = _decimal(request.trailing_stop)
        _, position = await self._apply(
            lambda a: self.engine.modify_position(
                a, _position_id(request.position_id), stop_loss, take_profit, _now(), trailing_stop
            ),
            request.account_id,
        )
        response = pb.ModifyPositionResponse(position=self._position(position))
        await self._committed()
        return response

    async def ClosePosition(
        self, request: pb.ClosePositionRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClosePositionResponse:
        volume = _decimal(request.volume)
        account, result = await self._apply(
            lambda a: self.engine.close_position(
                a, _position_id(request.position_id), volume, _now()
            ),
            request.account_id,
        )
        response = pb.ClosePositionResponse(
            trade=codec.trade_pb(result.trade), account=self._view(account)
        )
        if result.position is not None:
            response.position.CopyFrom(self._position(result.position))
        await self._committed()
        return response

    async def ListTrades(
        self, request: pb.ListTradesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTradesResponse:
        account = self._account(request.account_id)
        before, size = _page(request)
        start, end = _window(request)
        await self._committed()
        trades = await store.list_trades(
            self.pool,
            account.account_id,
            before_id=before,
            limit=size + 1,
            symbol=request.symbol,
            start=start,
            end=end,
        )
        token = str(trades[size - 1].trade_id) if len(trades) > size else ""
        return pb.ListTradesResponse(
            trades=[codec.trade_pb(t) for t in trades[:size]], next_page_token=token
        )

    async def StreamAccount(
        self, request: pb.StreamAccountRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamAccountResponse]:
        account = self._account(request.account_id)
        key = str(account.account_id)
        subscription = self.streams.subscribe(key)
        try:
            await self._committed()
            snapshot_sequence = self.engine.last_sequence
            view = self.engine.view(account)
            yield pb.StreamAccountResponse(
                event=pb.AccountEvent(
                    sequence=snapshot_sequence,
                    account_id=key,
                    user_id=account.user_id,
                    type=int(EventType.ACCOUNT_SNAPSHOT),  # type: ignore[arg-type]
                    time=codec.ts(_now()),
                    account=codec.account_pb(view),
                )
            )
            while True:
                event = await subscription.queue.get()
                if subscription.overflowed:
                    raise ServiceError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "SLOW_CONSUMER",
                        "the stream fell too far behind; reconnect",
                    )
                if event.sequence > snapshot_sequence:
                    yield pb.StreamAccountResponse(event=event)
        finally:
            self.streams.unsubscribe(key, subscription)


class _PageRequest(Protocol):
    page_size: int
    page_token: str


def _page(request: _PageRequest) -> tuple[int | None, int]:
    """(id the page starts below, page size) of a List request. Every list is newest first
    and its token is the last id of the previous page."""
    before = None
    if request.page_token:
        before = _id(request.page_token)
        if before is None:
            raise invalid_field("page_token", "not a token from a previous response")
    return before, request.page_size or DEFAULT_PAGE_SIZE


def _window(
    request: pb.ListTradesRequest | pb.ListTransactionsRequest,
) -> tuple[datetime | None, datetime | None]:
    """(start, end) of a List request's optional time window."""
    bounds: list[datetime | None] = []
    for name in ("start_time", "end_time"):
        if not request.HasField(name):
            bounds.append(None)
            continue
        try:
            bounds.append(getattr(request, name).ToDatetime(tzinfo=UTC))
        except (ValueError, OverflowError) as exc:
            raise invalid_field(name, "is not a valid time") from exc
    start, end = bounds
    if start is not None and end is not None and start >= end:
        raise invalid_field("start_time", "must be before end_time")
    return start, end


def _position_id(text: str) -> int:
    position_id = _id(text)
    if position_id is None:
        raise invalid_field("position_id", _MALFORMED_ID)
    return position_id

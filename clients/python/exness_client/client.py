"""ExnessClient: one async object for Auth, MarketData and Trading, through Envoy or direct."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import grpc
from exness.auth.v1 import auth_pb2, auth_pb2_grpc
from exness.market.v1 import market_pb2, market_pb2_grpc
from exness.trading.v1 import trading_pb2, trading_pb2_grpc
from google.protobuf import timestamp_pb2

from exness_client.account_feed import AccountFeed, OpenedCall
from exness_client.errors import ExnessError
from exness_client.session import Session, SessionStore

R = TypeVar("R")
Number = str | Decimal | int

_SIDES = {"buy": trading_pb2.ORDER_SIDE_BUY, "sell": trading_pb2.ORDER_SIDE_SELL}
_TYPES = {
    "market": trading_pb2.ORDER_TYPE_MARKET,
    "limit": trading_pb2.ORDER_TYPE_LIMIT,
    "stop": trading_pb2.ORDER_TYPE_STOP,
}


@dataclass(frozen=True)
class Targets:
    """host:port of each service; all three are the same address behind Envoy."""

    auth: str
    market: str
    trading: str

    @classmethod
    def single(cls, target: str) -> Targets:
        return cls(target, target, target)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    first_backoff_s: float = 0.1
    max_backoff_s: float = 2.0

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_s, self.first_backoff_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # jitter: retries of many clients spread


_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# A server that dies in the middle of a stream reaches a client behind Envoy as a reset stream
# (RST_STREAM: INTERNAL, no ErrorInfo reason). Read-only streams reconnect on it too.
_STREAM_RETRYABLE = (*_RETRYABLE, grpc.StatusCode.INTERNAL)


def _decimal(value: Number | None, name: str) -> str:
    """Decimal strings on the wire; floats are refused (money is never a float)."""
    if value is None:
        return ""
    if isinstance(value, float):
        raise TypeError(f"{name} must be a str or Decimal, not float")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


class ExnessClient:
    def __init__(
        self,
        target: str | Targets,
        *,
        store: SessionStore | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.targets = Targets.single(target) if isinstance(target, str) else target
        self.store = store or SessionStore()
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        channels: dict[str, grpc.aio.Channel] = {}
        for address in {self.targets.auth, self.targets.market, self.targets.trading}:
            channels[address] = grpc.aio.insecure_channel(
                address,
                options=[
                    ("grpc.keepalive_time_ms", 30_000),
                    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ],
            )
        self._channels = channels
        self.auth = auth_pb2_grpc.AuthServiceStub(channels[self.targets.auth])
        self.market = market_pb2_grpc.MarketDataServiceStub(channels[self.targets.market])
        self.trading = trading_pb2_grpc.TradingServiceStub(channels[self.targets.trading])
        self._refresh_lock = asyncio.Lock()

    async def __aenter__(self) -> ExnessClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    # --- the call pipeline ------------------------------------------------------------------

    async def _metadata(self) -> tuple[tuple[str, str], ...]:
        session = self.store.session
        if session is None:
            raise ExnessError(
                grpc.StatusCode.UNAUTHENTICATED, "not signed in: log in first", "TOKEN_INVALID"
            )
        if session.needs_refresh():
            session = await self._refresh_if_current(session)
        return (("authorization", f"Bearer {session.access_token}"),)

    async def _call(
        self,
        rpc: Callable[..., Awaitable[R]],
        request: Any,
        *,
        auth: bool = True,
        retry: bool = False,
    ) -> R:
        """One logical call: a token refresh and one more try on UNAUTHENTICATED; with
        `retry`, backoff and more tries on transport failures (no ErrorInfo reason: the
        request may not have been served). Only calls safe to repeat pass retry=True."""
        attempt = 0
        refreshed = False
        while True:
            metadata = await self._metadata() if auth else ()
            try:
                return await rpc(request, metadata=metadata, timeout=self.timeout_s)
            except grpc.aio.AioRpcError as exc:
                error = ExnessError.from_rpc(exc)
            session = self.store.session
            if (
                auth
                and not refreshed
                and session is not None
                and error.code == grpc.StatusCode.UNAUTHENTICATED
            ):
                refreshed = True
                await self._refresh_if_current(session)
                continue
            if (
                retry
                and error.code in _RETRYABLE
                and not error.reason
                and attempt + 1 < self.retry.attempts
            ):
                await asyncio.sleep(self.retry.backoff(attempt))
                attempt += 1
                continue
            raise error

    async def _refresh_if_current(self, seen: Session) -> Session:
        """Refresh tokens are single-use (a reused one revokes the whole login), so concurrent
        calls must not each refresh: the first does, the others take its result."""
        async with self._refresh_lock:
            current = self.store.session
            if current is not None and current.access_token != seen.access_token:
                return current
            await self.refresh()
            assert self.store.session is not None
            return self.store.session

    # --- Auth -------------------------------------------------------------------------------

    async def register(self, email: str, password: str) -> auth_pb2.RegisterResponse:
        reply: auth_pb2.RegisterResponse = await self._call(
            self.auth.Register, auth_pb2.RegisterRequest(email=email, password=password), auth=False
        )
        tokens = reply.tokens
        self.store.save(
            Session.issued(
                tokens.access_token, tokens.refresh_token, tokens.expires_in, reply.user.email
            )
        )
        return reply

    async def login(self, email: str, password: str) -> auth_pb2.LoginResponse:
        reply: auth_pb2.LoginResponse = await self._call(
            self.auth.Login,
            auth_pb2.LoginRequest(email=email, password=password),
            auth=False,
            retry=True,
        )
        self.store.save(
            Session.issued(
                reply.access_token, reply.refresh_token, reply.expires_in, email.strip().lower()
            )
        )
        return reply

    async def refresh(self) -> auth_pb2.RefreshResponse:
        session = self.store.session
        if session is None:
            raise ExnessError(
                grpc.StatusCode.UNAUTHENTICATED, "not signed in: log in first", "TOKEN_INVALID"
            )
        try:
            reply: auth_pb2.RefreshResponse = await self.auth.Refresh(
                auth_pb2.RefreshRequest(refresh_token=session.refresh_token), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            error = ExnessError.from_rpc(exc)
            if error.code == grpc.StatusCode.UNAUTHENTICATED:
                self.store.save(None)  # the login is over: sign in again
            raise error from None
        self.store.save(
            Session.issued(reply.access_token, reply.refresh_token, reply.expires_in, session.email)
        )
        return reply

    async def logout(self) -> None:
        session = self.store.session
        if session is None:
            return
        await self._call(
            self.auth.Logout,
            auth_pb2.LogoutRequest(refresh_token=session.refresh_token),
            auth=False,
            retry=True,
        )
        self.store.save(None)

    async def me(self) -> auth_pb2.User:
        reply: auth_pb2.GetMeResponse = await self._call(
            self.auth.GetMe, auth_pb2.GetMeRequest(), retry=True
        )
        return reply.user

    # --- MarketData (public) ------------------------------------------------------------------

    async def instruments(self) -> list[market_pb2.Instrument]:
        reply: market_pb2.ListInstrumentsResponse = await self._call(
            self.market.ListInstruments, market_pb2.ListInstrumentsRequest(), auth=False, retry=True
        )
        return list(reply.instruments)

    async def quote(self, symbol: str) -> market_pb2.Quote:
        reply: market_pb2.GetQuoteResponse = await self._call(
            self.market.GetQuote, market_pb2.GetQuoteRequest(symbol=symbol), auth=False, retry=True
        )
        return reply.quote

    async def candles(
        self, symbol: str, interval: market_pb2.CandleInterval.ValueType, limit: int = 0
    ) -> list[market_pb2.Candle]:
        reply: market_pb2.GetCandlesResponse = await self._call(
            self.market.GetCandles,
            market_pb2.GetCandlesRequest(symbol=symbol, interval=interval, limit=limit),
            auth=False,
            retry=True,
        )
        return list(reply.candles)

    async def stream_quotes(
        self, symbols: Sequence[str], reconnect: bool = True
    ) -> AsyncIterator[market_pb2.Quote]:
        """Live quotes; on a dropped stream, reconnects with backoff (the server starts each
        stream with the latest quote of every symbol, so nothing current is missed)."""
        attempt = 0
        while True:
            call = self.market.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=list(symbols)))
            try:
                async for message in call:
                    attempt = 0
                    yield message.quote
                return
            except grpc.aio.AioRpcError as exc:
                error = ExnessError.from_rpc(exc)
                if not reconnect or error.code not in _STREAM_RETRYABLE or error.reason:
                    raise error from None
            finally:
                call.cancel()
            await asyncio.sleep(self.retry.backoff(min(attempt, 5)))
            attempt += 1

    # --- Trading ------------------------------------------------------------------------------

    async def account(self) -> trading_pb2.Account:
        reply: trading_pb2.GetAccountResponse = await self._call(
            self.trading.GetAccount, trading_pb2.GetAccountRequest(), retry=True
        )
        return reply.account

    async def deposit(self, amount: Number) -> trading_pb2.DepositResponse:
        # Not retried: a deposit carries no idempotency key.
        reply: trading_pb2.DepositResponse = await self._call(
            self.trading.Deposit, trading_pb2.DepositRequest(amount=_decimal(amount, "amount"))
        )
        return reply

    async def set_leverage(self, leverage: int) -> trading_pb2.Account:
        reply: trading_pb2.SetLeverageResponse = await self._call(
            self.trading.SetLeverage, trading_pb2.SetLeverageRequest(leverage=leverage), retry=True
        )
        return reply.account

    async def place_order(
        self,
        symbol: str,
        side: str,
        *,
        volume: Number | None = None,
        margin: Number | None = None,
        leverage: int = 0,
        order_type: str = "market",
        price: Number | None = None,
        stop_loss: Number | None = None,
        take_profit: Number | None = None,
        client_order_id: str | None = None,
        expire_time: datetime | None = None,
    ) -> trading_pb2.PlaceOrderResponse:
        """Places an order. Its idempotency key is generated here ONCE and reused by every
        retry, so a retried request never opens a second position."""
        request = trading_pb2.PlaceOrderRequest(
            symbol=symbol.upper(),
            side=_SIDES[side.lower()],
            type=_TYPES[order_type.lower()],
            volume=_decimal(volume, "volume"),
            margin=_decimal(margin, "margin"),
            leverage=leverage,
            price=_decimal(price, "price"),
            stop_loss=_decimal(stop_loss, "stop_loss"),
            take_profit=_decimal(take_profit, "take_profit"),
            client_order_id=client_order_id or f"sdk-{uuid.uuid4().hex}",
        )
        if expire_time is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(expire_time)
            request.expire_time.CopyFrom(stamp)
        reply: trading_pb2.PlaceOrderResponse = await self._call(
            self.trading.PlaceOrder, request, retry=True
        )
        return reply

    async def orders(self) -> list[trading_pb2.Order]:
        reply: trading_pb2.ListOrdersResponse = await self._call(
            self.trading.ListOrders, trading_pb2.ListOrdersRequest(), retry=True
        )
        return list(reply.orders)

    async def cancel_order(self, order_id: str) -> trading_pb2.Order:
        reply: trading_pb2.CancelOrderResponse = await self._call(
            self.trading.CancelOrder, trading_pb2.CancelOrderRequest(order_id=order_id)
        )
        return reply.order

    async def positions(self) -> list[trading_pb2.Position]:
        reply: trading_pb2.ListPositionsResponse = await self._call(
            self.trading.ListPositions, trading_pb2.ListPositionsRequest(), retry=True
        )
        return list(reply.positions)

    async def modify_position(
        self, position_id: str, stop_loss: Number | None = None, take_profit: Number | None = None
    ) -> trading_pb2.Position:
        reply: trading_pb2.ModifyPositionResponse = await self._call(
            self.trading.ModifyPosition,
            trading_pb2.ModifyPositionRequest(
                position_id=position_id,
                stop_loss=_decimal(stop_loss, "stop_loss"),
                take_profit=_decimal(take_profit, "take_profit"),
            ),
            retry=True,
        )  # sets absolute levels: safe to repeat
        return reply.position

    async def close_position(
        self, position_id: str, volume: Number | None = None
    ) -> trading_pb2.ClosePositionResponse:
        # Not retried: a repeated partial close would close twice.
        reply: trading_pb2.ClosePositionResponse = await self._call(
            self.trading.ClosePosition,
            trading_pb2.ClosePositionRequest(
                position_id=position_id, volume=_decimal(volume, "volume")
            ),
        )
        return reply

    async def trades(
        self, page_size: int = 0, page_token: str = "", symbol: str = ""
    ) -> trading_pb2.ListTradesResponse:
        reply: trading_pb2.ListTradesResponse = await self._call(
            self.trading.ListTrades,
            trading_pb2.ListTradesRequest(
                page_size=page_size, page_token=page_token, symbol=symbol
            ),
            retry=True,
        )
        return reply

    async def stream_account(
        self, reconnect: bool = True
    ) -> AsyncIterator[trading_pb2.AccountEvent]:
        """Account events, starting with a snapshot of the account. The server ends a stream
        when its access token expires: with `reconnect`, a successor opened with a fresh token
        takes over without a gap (exness_client.account_feed)."""
        feed = AccountFeed(
            self._open_account_call, self.retry.backoff, self.retry.attempts if reconnect else 0
        )
        async for event in feed.events():
            yield event

    async def _open_account_call(self, fresh_token: bool) -> OpenedCall:
        if fresh_token and self.store.session is not None:
            await self._refresh_if_current(self.store.session)
        metadata = await self._metadata()
        assert self.store.session is not None
        call = self.trading.StreamAccount(trading_pb2.StreamAccountRequest(), metadata=metadata)
        return OpenedCall(call, self.store.session.refresh_at)

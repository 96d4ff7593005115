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

from grpclib.client import Channel
from grpclib.exceptions import GRPCError, StreamTerminatedError

from exness_client.account_feed import SESSION_REVOKED, AccountFeed, OpenedCall
from exness_client.contracts.exness.auth.v1 import (
    AuthServiceStub,
    GetMeRequest,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    RefreshRequest,
    RefreshResponse,
    RegisterRequest,
    RegisterResponse,
    User,
)
from exness_client.contracts.exness.market.v1 import (
    Candle,
    CandleInterval,
    GetCandlesRequest,
    GetQuoteRequest,
    Instrument,
    ListInstrumentsRequest,
    MarketDataServiceStub,
    Quote,
    StreamQuotesRequest,
)
from exness_client.contracts.exness.trading.v1 import (
    Account,
    AccountEvent,
    AccountKind,
    AccountType,
    CancelOrderRequest,
    ClosePositionRequest,
    ClosePositionResponse,
    CreateAccountRequest,
    DepositRequest,
    DepositResponse,
    GetAccountRequest,
    ListAccountsRequest,
    ListAccountTypesRequest,
    ListOrdersRequest,
    ListPositionsRequest,
    ListTradesRequest,
    ListTradesResponse,
    ListTransactionsRequest,
    ListTransactionsResponse,
    ModifyPositionRequest,
    Order,
    OrderSide,
    OrderType,
    PlaceOrderRequest,
    PlaceOrderResponse,
    Position,
    SetLeverageRequest,
    StreamAccountRequest,
    TradingServiceStub,
    WithdrawRequest,
    WithdrawResponse,
)
from exness_client.errors import Code, ExnessError, is_transient
from exness_client.session import Session, SessionStore
from exness_client.wire import open_channel

R = TypeVar("R")
Number = str | Decimal | int

_SIDES = {"buy": OrderSide.BUY, "sell": OrderSide.SELL}
_TYPES = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop": OrderType.STOP}


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


Metadata = tuple[tuple[str, str], ...]


def _failure(exc: Exception) -> ExnessError:
    """A failed call as ExnessError; a broken connection is UNAVAILABLE without a reason (the
    request may or may not have been served)."""
    if isinstance(exc, GRPCError):
        return ExnessError.from_grpc(exc)
    return ExnessError(Code.UNAVAILABLE, f"connection failed: {exc}")


# What a call can fail with besides a gRPC status: the connection itself.
_CALL_FAILURES = (GRPCError, StreamTerminatedError, OSError)


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
        channels: dict[str, Channel] = {}
        for address in {self.targets.auth, self.targets.market, self.targets.trading}:
            channels[address] = open_channel(address)
        self._channels = channels
        self.auth = AuthServiceStub(channels[self.targets.auth])
        self.market = MarketDataServiceStub(channels[self.targets.market])
        self.trading = TradingServiceStub(channels[self.targets.trading])
        self._refresh_lock = asyncio.Lock()

    async def __aenter__(self) -> ExnessClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    # --- the call pipeline ------------------------------------------------------------------

    async def _metadata(self) -> Metadata:
        session = self.store.session
        if session is None:
            raise ExnessError(Code.UNAUTHENTICATED, "not signed in: log in first", "TOKEN_INVALID")
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
            except _CALL_FAILURES as exc:
                error = _failure(exc)
            session = self.store.session
            if error.reason == SESSION_REVOKED:
                self.store.save(None)  # logged out elsewhere: sign in again
                raise error
            if (
                auth
                and not refreshed
                and session is not None
                and error.code == Code.UNAUTHENTICATED
            ):
                refreshed = True
                await self._refresh_if_current(session)
                continue
            if retry and is_transient(error) and attempt + 1 < self.retry.attempts:
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

    async def register(self, email: str, password: str) -> RegisterResponse:
        reply: RegisterResponse = await self._call(
            self.auth.register, RegisterRequest(email=email, password=password), auth=False
        )
        tokens, user = reply.tokens, reply.user
        assert tokens is not None
        assert user is not None
        self.store.save(
            Session.issued(tokens.access_token, tokens.refresh_token, tokens.expires_in, user.email)
        )
        return reply

    async def login(self, email: str, password: str) -> LoginResponse:
        reply: LoginResponse = await self._call(
            self.auth.login,
            LoginRequest(email=email, password=password),
            auth=False,
            retry=True,
        )
        self.store.save(
            Session.issued(
                reply.access_token, reply.refresh_token, reply.expires_in, email.strip().lower()
            )
        )
        return reply

    async def refresh(self) -> RefreshResponse:
        session = self.store.session
        if session is None:
            raise ExnessError(Code.UNAUTHENTICATED, "not signed in: log in first", "TOKEN_INVALID")
        try:
            reply = await self.auth.refresh(
                RefreshRequest(refresh_token=session.refresh_token), timeout=self.timeout_s
            )
        except _CALL_FAILURES as exc:
            error = _failure(exc)
            if error.code == Code.UNAUTHENTICATED:
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
            self.auth.logout,
            LogoutRequest(refresh_token=session.refresh_token),
            auth=False,
            retry=True,
        )
        self.store.save(None)

    async def me(self) -> User:
        reply = await self._call(self.auth.get_me, GetMeRequest(), retry=True)
        assert reply.user is not None
        return reply.user

    # --- MarketData (public) ------------------------------------------------------------------

    async def instruments(self) -> list[Instrument]:
        reply = await self._call(
            self.market.list_instruments, ListInstrumentsRequest(), auth=False, retry=True
        )
        return list(reply.instruments)

    async def quote(self, symbol: str, account_type: str = "") -> Quote:
        """The latest quote; with `account_type` (e.g. "raw_spread"), with that type's spread."""
        reply = await self._call(
            self.market.get_quote,
            GetQuoteRequest(symbol=symbol, account_type=account_type),
            auth=False,
            retry=True,
        )
        assert reply.quote is not None
        return reply.quote

    async def candles(self, symbol: str, interval: CandleInterval, limit: int = 0) -> list[Candle]:
        reply = await self._call(
            self.market.get_candles,
            GetCandlesRequest(symbol=symbol, interval=interval, limit=limit),
            auth=False,
            retry=True,
        )
        return list(reply.candles)

    async def stream_quotes(
        self, symbols: Sequence[str], reconnect: bool = True, account_type: str = ""
    ) -> AsyncIterator[Quote]:
        """Live quotes; on a dropped stream, reconnects with backoff (the server starts each
        stream with the latest quote of every symbol, so nothing current is missed)."""
        attempt = 0
        while True:
            try:
                async for message in self.market.stream_quotes(
                    StreamQuotesRequest(symbols=list(symbols), account_type=account_type)
                ):
                    attempt = 0
                    if message.quote is not None:
                        yield message.quote
                return
            except _CALL_FAILURES as exc:
                error = _failure(exc)
                if not reconnect or not is_transient(error, stream=True):
                    raise error from None
            await asyncio.sleep(self.retry.backoff(min(attempt, 5)))
            attempt += 1

    # --- Trading ------------------------------------------------------------------------------

    # Every Trading call takes `account_id`: one of the caller's accounts (see accounts());
    # empty for the default one.

    async def account(self, account_id: str = "") -> Account:
        reply = await self._call(
            self.trading.get_account, GetAccountRequest(account_id=account_id), retry=True
        )
        assert reply.account is not None
        return reply.account

    async def accounts(self) -> list[Account]:
        """The caller's trading accounts, the default one first."""
        reply = await self._call(self.trading.list_accounts, ListAccountsRequest(), retry=True)
        return list(reply.accounts)

    async def create_account(
        self, account_type: str, *, real: bool = False, leverage: int = 0, swap_free: bool = False
    ) -> Account:
        # Not retried: a repeated call would open a second account.
        reply = await self._call(
            self.trading.create_account,
            CreateAccountRequest(
                account_type=account_type,
                kind=AccountKind.REAL if real else AccountKind.DEMO,
                leverage=leverage,
                swap_free=swap_free,
            ),
        )
        assert reply.account is not None
        return reply.account

    async def account_types(self) -> list[AccountType]:
        reply = await self._call(
            self.trading.list_account_types, ListAccountTypesRequest(), auth=False, retry=True
        )
        return list(reply.account_types)

    async def deposit(self, amount: Number, account_id: str = "") -> DepositResponse:
        # Not retried: a deposit carries no idempotency key.
        reply: DepositResponse = await self._call(
            self.trading.deposit,
            DepositRequest(amount=_decimal(amount, "amount"), account_id=account_id),
        )
        return reply

    async def withdraw(self, amount: Number, account_id: str = "") -> WithdrawResponse:
        # Not retried, as deposit.
        reply: WithdrawResponse = await self._call(
            self.trading.withdraw,
            WithdrawRequest(amount=_decimal(amount, "amount"), account_id=account_id),
        )
        return reply

    async def transactions(
        self,
        page_size: int = 0,
        page_token: str = "",
        account_id: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> ListTransactionsResponse:
        """Balance operations newest first, each with the balance after it."""
        reply: ListTransactionsResponse = await self._call(
            self.trading.list_transactions,
            ListTransactionsRequest(
                page_size=page_size,
                page_token=page_token,
                account_id=account_id,
                start_time=start_time,
                end_time=end_time,
            ),
            retry=True,
        )
        return reply

    async def set_leverage(self, leverage: int, account_id: str = "") -> Account:
        reply = await self._call(
            self.trading.set_leverage,
            SetLeverageRequest(leverage=leverage, account_id=account_id),
            retry=True,
        )
        assert reply.account is not None
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
        account_id: str = "",
    ) -> PlaceOrderResponse:
        """Places an order. Its idempotency key is generated here ONCE and reused by every
        retry, so a retried request never opens a second position."""
        request = PlaceOrderRequest(
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
            expire_time=expire_time,
            account_id=account_id,
        )
        reply: PlaceOrderResponse = await self._call(self.trading.place_order, request, retry=True)
        return reply

    async def orders(self, account_id: str = "") -> list[Order]:
        reply = await self._call(
            self.trading.list_orders, ListOrdersRequest(account_id=account_id), retry=True
        )
        return list(reply.orders)

    async def cancel_order(self, order_id: str, account_id: str = "") -> Order:
        reply = await self._call(
            self.trading.cancel_order, CancelOrderRequest(order_id=order_id, account_id=account_id)
        )
        assert reply.order is not None
        return reply.order

    async def positions(self, account_id: str = "") -> list[Position]:
        reply = await self._call(
            self.trading.list_positions, ListPositionsRequest(account_id=account_id), retry=True
        )
        return list(reply.positions)

    async def modify_position(
        self,
        position_id: str,
        stop_loss: Number | None = None,
        take_profit: Number | None = None,
        account_id: str = "",
    ) -> Position:
        reply = await self._call(
            self.trading.modify_position,
            ModifyPositionRequest(
                position_id=position_id,
                stop_loss=_decimal(stop_loss, "stop_loss"),
                take_profit=_decimal(take_profit, "take_profit"),
                account_id=account_id,
            ),
            retry=True,
        )  # sets absolute levels: safe to repeat
        assert reply.position is not None
        return reply.position

    async def close_position(
        self, position_id: str, volume: Number | None = None, account_id: str = ""
    ) -> ClosePositionResponse:
        # Not retried: a repeated partial close would close twice.
        reply: ClosePositionResponse = await self._call(
            self.trading.close_position,
            ClosePositionRequest(
                position_id=position_id, volume=_decimal(volume, "volume"), account_id=account_id
            ),
        )
        return reply

    async def trades(
        self,
        page_size: int = 0,
        page_token: str = "",
        symbol: str = "",
        account_id: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> ListTradesResponse:
        reply: ListTradesResponse = await self._call(
            self.trading.list_trades,
            ListTradesRequest(
                page_size=page_size,
                page_token=page_token,
                symbol=symbol,
                account_id=account_id,
                start_time=start_time,
                end_time=end_time,
            ),
            retry=True,
        )
        return reply

    async def stream_account(
        self, reconnect: bool = True, account_id: str = ""
    ) -> AsyncIterator[AccountEvent]:
        """Account events, starting with a snapshot of the account. The server ends a stream
        when its access token expires: with `reconnect`, a successor opened with a fresh token
        takes over without a gap (exness_client.account_feed)."""

        async def open_call(fresh_token: bool) -> OpenedCall:
            return await self._open_account_call(fresh_token, account_id)

        feed = AccountFeed(open_call, self.retry.backoff, self.retry.attempts if reconnect else 0)
        async for event in feed.events():
            yield event

    async def _open_account_call(self, fresh_token: bool, account_id: str = "") -> OpenedCall:
        if fresh_token and self.store.session is not None:
            await self._refresh_if_current(self.store.session)
        metadata = await self._metadata()
        assert self.store.session is not None
        call = self.trading.stream_account(
            StreamAccountRequest(account_id=account_id), metadata=metadata
        )
        return OpenedCall(call, self.store.session.refresh_at)

"""exness.admin.v1.TradingAdminService: the operators' view of and hold on this engine shard.

Served by the Trading process because it needs the engine's memory (positions, quotes, halts)
and its command path: a force-close is an engine command like ClosePosition, answered only
after its commit; a halt is written to the database before the engine applies it, so an
acknowledged halt survives a restart.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import grpc
from exness.admin.v1 import admin_pb2 as pb
from exness.admin.v1 import admin_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from kit.rpc.errors import not_found
from services.trading import codec
from services.trading.committer import Committer
from services.trading.engine import Engine
from services.trading.model import ZERO, Side
from services.trading.relay import OutboxRelay

SERVICE_NAME = "exness.admin.v1.TradingAdminService"
DEFAULT_LIMIT = 50
HUNDRED = Decimal(100)


async def load_halts(pool: AsyncConnectionPool) -> dict[str, str]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT symbol, reason FROM trading_halts")
        return {str(symbol): str(reason) for symbol, reason in await cur.fetchall()}


class TradingAdminServicer(admin_pb2_grpc.TradingAdminServiceServicer):
    def __init__(
        self, engine: Engine, committer: Committer, pool: AsyncConnectionPool, relay: OutboxRelay
    ) -> None:
        self.engine = engine
        self.committer = committer
        self.pool = pool
        self.relay = relay

    def _known(self, symbol: str) -> None:
        if symbol not in self.engine.instruments:
            raise not_found("UNKNOWN_SYMBOL", f"{symbol} is not a listed instrument", symbol=symbol)

    async def GetExposure(
        self, request: pb.GetExposureRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetExposureResponse:
        longs: dict[str, Decimal] = defaultdict(lambda: ZERO)
        shorts: dict[str, Decimal] = defaultdict(lambda: ZERO)
        pnl: dict[str, Decimal] = defaultdict(lambda: ZERO)
        counts: dict[str, int] = defaultdict(int)
        for position in self.engine.positions.values():
            symbol = position.symbol
            counts[symbol] += 1
            side = longs if position.side is Side.BUY else shorts
            side[symbol] += position.volume
            quote = self.engine.quotes.get(symbol)
            if quote is not None:
                pnl[symbol] += position.pnl_at(position.close_price(quote))
        answer = pb.GetExposureResponse()
        for symbol in sorted(counts):
            net = longs[symbol] - shorts[symbol]
            quote = self.engine.quotes.get(symbol)
            notional = ""
            floating = ""
            if quote is not None:
                mid = (quote.bid + quote.ask) / 2
                size = self.engine.instruments[symbol].contract_size
                notional = codec.cents(net * size * mid)
                floating = codec.cents(pnl[symbol])
            answer.symbols.append(
                pb.SymbolExposure(
                    symbol=symbol,
                    long_volume=codec.dec(longs[symbol]),
                    short_volume=codec.dec(shorts[symbol]),
                    net_volume=codec.dec(net),
                    net_notional=notional,
                    clients_floating_pnl=floating,
                    positions=counts[symbol],
                    halted=symbol in self.engine.halted,
                )
            )
        return answer

    async def ListAccountsByMarginLevel(
        self, request: pb.ListAccountsByMarginLevelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccountsByMarginLevelResponse:
        risks = []
        for account in self.engine.accounts.values():
            if not account.positions or account.margin <= 0:
                continue
            view = self.engine.view(account)
            risks.append((view.equity / view.margin * HUNDRED, view, len(account.positions)))
        risks.sort(key=lambda r: (r[0], r[1].account_id))
        return pb.ListAccountsByMarginLevelResponse(
            accounts=[
                pb.AccountRisk(
                    account_id=str(view.account_id),
                    user_id=view.user_id,
                    balance=codec.cents(view.balance),
                    equity=codec.cents(view.equity),
                    margin=codec.cents(view.margin),
                    margin_level=codec.dec(level, 2),
                    positions=positions,
                )
                for level, view, positions in risks[: request.limit or DEFAULT_LIMIT]
            ]
        )

    async def HaltTrading(
        self, request: pb.HaltTradingRequest, context: grpc.aio.ServicerContext
    ) -> pb.HaltTradingResponse:
        self._known(request.symbol)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO trading_halts (symbol, reason) VALUES (%s, %s)"
                " ON CONFLICT (symbol) DO UPDATE SET reason = excluded.reason"
                " RETURNING halted_at",
                (request.symbol, request.reason),
            )
            row = await cur.fetchone()
        assert row is not None
        self.engine.halted[request.symbol] = request.reason
        return pb.HaltTradingResponse(halt=_halt(request.symbol, request.reason, row[0]))

    async def ResumeTrading(
        self, request: pb.ResumeTradingRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeTradingResponse:
        self._known(request.symbol)
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM trading_halts WHERE symbol = %s", (request.symbol,))
        was_halted = self.engine.halted.pop(request.symbol, None) is not None
        return pb.ResumeTradingResponse(was_halted=was_halted)

    async def ListHalts(
        self, request: pb.ListHaltsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListHaltsResponse:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT symbol, reason, halted_at FROM trading_halts ORDER BY symbol"
            )
            rows = await cur.fetchall()
        return pb.ListHaltsResponse(halts=[_halt(*row) for row in rows])

    async def ForceClosePosition(
        self, request: pb.ForceClosePositionRequest, context: grpc.aio.ServicerContext
    ) -> pb.ForceClosePositionResponse:
        position_id = int(request.position_id)
        position = self.engine.positions.get(position_id)
        if position is None:
            raise not_found(
                "POSITION_NOT_FOUND", "no such open position", position_id=request.position_id
            )
        account = self.engine.accounts[position.account_id]
        result = self.engine.force_close(account, position_id, request.reason, datetime.now(UTC))
        await self.committer.barrier()
        return pb.ForceClosePositionResponse(
            trade=codec.trade_pb(result.trade), account_id=str(account.account_id)
        )

    async def RepublishEvents(
        self, request: pb.RepublishEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepublishEventsResponse:
        await self.committer.barrier()
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM trading_journal WHERE shard = %s AND sequence >= %s",
                (self.engine.shard_id, request.from_sequence),
            )
            row = await cur.fetchone()
        assert row is not None
        self.relay.republish_from(request.from_sequence)
        return pb.RepublishEventsResponse(
            events=int(row[0]), last_sequence=self.engine.last_sequence
        )


def _halt(symbol: str, reason: str, halted_at: datetime) -> pb.Halt:
    return pb.Halt(symbol=symbol, reason=reason, halted_at=codec.ts(halted_at))

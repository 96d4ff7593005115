"""exness.admin.v1.MarketAdminService: served by MarketData, which applies the spread markup to
every quote it publishes. The new markup is written to the instruments table and this process's
catalog is reloaded before the answer, so quotes published after it carry the new markup."""

from __future__ import annotations

import grpc
from exness.admin.v1 import admin_pb2 as pb
from exness.admin.v1 import admin_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from kit.decimals import format_decimal, parse_decimal
from kit.rpc.errors import not_found
from kit.rpc.interceptors import Access
from services.market.instruments import InstrumentCatalog

SERVICE_NAME = "exness.admin.v1.MarketAdminService"
METHOD_ACCESS = {f"/{SERVICE_NAME}/SetSpreadMarkup": Access.OPERATOR}


class MarketAdminServicer(admin_pb2_grpc.MarketAdminServiceServicer):
    def __init__(self, pool: AsyncConnectionPool, catalog: InstrumentCatalog) -> None:
        self.pool = pool
        self.catalog = catalog

    async def SetSpreadMarkup(
        self, request: pb.SetSpreadMarkupRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetSpreadMarkupResponse:
        spec = await self.catalog.lookup(request.symbol)
        if spec is None:
            raise not_found(
                "UNKNOWN_SYMBOL",
                f"{request.symbol} is not a listed instrument",
                symbol=request.symbol,
            )
        markup = parse_decimal(request.spread_markup)
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE instruments SET spread_markup = %s WHERE symbol = %s",
                (markup, request.symbol),
            )
        await self.catalog.refresh()
        return pb.SetSpreadMarkupResponse(
            symbol=request.symbol,
            previous_spread_markup=format_decimal(spec.spread_markup),
            spread_markup=format_decimal(markup),
        )

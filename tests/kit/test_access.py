"""Access is declared in the contract: every RPC names who may call it, and what it names is
what the pipeline applies."""

from __future__ import annotations

from exness.admin.v1 import admin_pb2
from exness.auth.v1 import auth_pb2
from exness.common.v1 import access_pb2
from exness.market.v1 import market_pb2
from exness.trading.v1 import trading_pb2
from google.protobuf import descriptor_pb2

from kit.rpc.access import Access, access_of

CONTRACTS = (admin_pb2, auth_pb2, market_pb2, trading_pb2)


def test_every_rpc_declares_its_access() -> None:
    for module in CONTRACTS:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                declared = method.GetOptions().Extensions[access_pb2.access]
                assert declared != access_pb2.ACCESS_UNSPECIFIED, method.full_name


def test_declared_access_of_the_contract() -> None:
    assert access_of("/exness.auth.v1.AuthService/Login") is Access.PUBLIC
    assert access_of("/exness.auth.v1.AuthService/GetMe") is Access.USER
    assert access_of("/exness.market.v1.MarketDataService/GetQuote") is Access.PUBLIC
    assert access_of("/exness.market.v1.MarketDataService/PublishQuotes") is Access.SERVICE
    assert access_of("/exness.trading.v1.TradingService/PlaceOrder") is Access.USER
    assert access_of("/exness.admin.v1.TradingAdminService/HaltTrading") is Access.OPERATOR


def test_undeclared_and_unknown_methods_need_a_user_token() -> None:
    assert Access.declared(descriptor_pb2.MethodOptions()) is Access.USER
    assert access_of("/exness.auth.v1.AuthService/NoSuchMethod") is Access.USER
    assert access_of("/no.such.Service/Method") is Access.USER
    assert access_of("/grpc.health.v1.Health/Check") is Access.PUBLIC

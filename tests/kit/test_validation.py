"""Declared field rules, enforced from the descriptors."""

from __future__ import annotations

import pytest
from exness.market.v1 import market_pb2
from exness.trading.v1 import trading_pb2
from hypothesis import given
from hypothesis import strategies as st

from kit.decimals import format_decimal, parse_decimal
from kit.rpc.validation import violations


def fields(message: object) -> dict[str, str]:
    return {v.field: v.description for v in violations(message)}  # type: ignore[arg-type]


def test_a_valid_order_has_no_violations() -> None:
    order = trading_pb2.PlaceOrderRequest(
        symbol="BTCUSD",
        side=trading_pb2.ORDER_SIDE_BUY,
        type=trading_pb2.ORDER_TYPE_MARKET,
        volume="0.01",
        stop_loss="60000.5",
        client_order_id="abc-1",
    )
    assert fields(order) == {}


def test_every_broken_rule_is_named() -> None:
    order = trading_pb2.PlaceOrderRequest(
        symbol="btc usd",
        side=7,  # type: ignore[arg-type]
        volume="1e3",
        leverage=5000,
        price="-1",
        take_profit="0.123456789",
        client_order_id="has space",
    )
    assert set(fields(order)) == {
        "symbol",
        "side",
        "type",
        "volume",
        "leverage",
        "price",
        "take_profit",
        "client_order_id",
    }
    assert fields(order)["side"] == "unknown value 7"
    assert "greater than zero" in fields(order)["price"]
    assert "decimal places" in fields(order)["take_profit"]


@pytest.mark.parametrize(
    "amount",
    [
        *("NaN", "Infinity", "1,000", " 5", "+5", "0x10", "05", "1.", ".5", "1e2"),
        # Only ASCII digits, and nothing after the number (not even a newline).
        *("100\n", "1\u0660", "1\uff10", "\u0661", "1.\u0665", "5 ", "\u22125"),
    ],
)
def test_decimal_strings_must_be_plain(amount: str) -> None:
    assert "amount" in fields(trading_pb2.DepositRequest(amount=amount))


def test_repeated_items_and_limits() -> None:
    request = market_pb2.StreamQuotesRequest(symbols=["BTCUSD", "bad!"] + ["ETHUSD"] * 60)
    found = fields(request)
    assert "symbols[1]" in found
    assert found["symbols"] == "at most 50 values are allowed"
    assert fields(market_pb2.StreamQuotesRequest()) == {"symbols": "at least one value is required"}


def test_overlong_strings_are_not_pattern_matched() -> None:
    found = fields(trading_pb2.CancelOrderRequest(order_id="x" * 1_000_000))
    assert found == {"order_id": "must be at most 64 characters"}


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=8, min_value=-(10**12), max_value=10**12
    )
)
def test_decimal_text_round_trips(value: object) -> None:
    from decimal import Decimal

    assert isinstance(value, Decimal)
    assert parse_decimal(format_decimal(value)) == value


def test_timestamps_outside_the_supported_range_are_named() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    ancient = Timestamp()
    ancient.FromJsonString("0001-01-02T00:00:00Z")
    candles = market_pb2.GetCandlesRequest(symbol="BTCUSD", end_time=ancient)
    assert "end_time" in fields(candles)
    far = Timestamp(seconds=253402300799)  # 9999-12-31T23:59:59Z: valid protobuf, still refused
    order = trading_pb2.PlaceOrderRequest(
        symbol="BTCUSD",
        side=trading_pb2.ORDER_SIDE_BUY,
        type=trading_pb2.ORDER_TYPE_LIMIT,
        volume="0.01",
        price="100",
        expire_time=far,
    )
    assert set(fields(order)) == {"expire_time"}
    order.expire_time.FromJsonString("2030-01-01T00:00:00Z")
    assert fields(order) == {}

"""Bad input through the real Envoy never slips past a check and never makes a 500: unknown
fields in every request shape the transcoder accepts, ids and texts that only look valid,
dates out of range, oversized messages on every protocol."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from exness.market.v1 import market_pb2, market_pb2_grpc

from tests.edge.conftest import Stack, User
from tests.support.wire import inflating_get_quote


async def _open_position(api: httpx.AsyncClient, user: User) -> dict[str, Any]:
    placed = await api.post(
        "/v1/orders",
        headers=user.auth,
        json={
            "symbol": "BTCUSD",
            "side": "ORDER_SIDE_BUY",
            "type": "ORDER_TYPE_MARKET",
            "volume": "0.01",
            "stopLoss": "1",
        },
    )
    assert placed.status_code == 200, placed.text
    position: dict[str, Any] = placed.json()["position"]
    return position


async def _state(api: httpx.AsyncClient, user: User) -> tuple[Any, ...]:
    """What a refused request must leave unchanged: balance, positions (with their levels and
    volumes) and orders."""
    account = (await api.get("/v1/account", headers=user.auth)).json()["account"]
    positions = (await api.get("/v1/positions", headers=user.auth)).json()["positions"]
    orders = (await api.get("/v1/orders", headers=user.auth)).json()["orders"]
    levels = sorted(
        (p["positionId"], p["volume"], p["stopLoss"], p["takeProfit"]) for p in positions
    )
    return account["balance"], levels, sorted(o["orderId"] for o in orders)


def _details(reply: httpx.Response) -> tuple[dict[str, Any], dict[str, str]]:
    """The ErrorInfo and the BadRequest field violations of a JSON google.rpc.Status."""
    info: dict[str, Any] = {}
    fields: dict[str, str] = {}
    for detail in reply.json().get("details", []):
        if detail["@type"].endswith("/google.rpc.ErrorInfo"):
            info = detail
        elif detail["@type"].endswith("/google.rpc.BadRequest"):
            fields |= {v["field"]: v["description"] for v in detail["fieldViolations"]}
    return info, fields


def _assert_refused(reply: httpx.Response, why: str, expect: str | None = None) -> None:
    assert reply.status_code == 400, (why, reply.status_code, reply.text)
    assert reply.headers.get("content-type", "").startswith("application/json"), (
        why,
        reply.headers,
        reply.text,
    )
    assert reply.json()["code"] == 3, (why, reply.text)
    if expect is not None:
        assert expect in reply.json()["message"], (why, reply.text)
    # The shape of every error of the platform, whoever refused it.
    info, _ = _details(reply)
    assert info.get("reason") == "INVALID_ARGUMENT", (why, reply.text)
    assert info.get("domain") == "exness.com", (why, reply.text)


async def test_unknown_fields_are_refused_in_every_shape(
    api: httpx.AsyncClient, user: User
) -> None:
    """Each of these reached the transcoder unchecked: an order without its stop-loss, a PATCH
    that cleared the stop-loss, a partial close that closed the whole position."""
    position = await _open_position(api, user)
    pid = position["positionId"]
    before = await _state(api, user)
    order = (
        '"symbol": "BTCUSD", "side": "ORDER_SIDE_BUY", "type": "ORDER_TYPE_MARKET", '
        '"volume": "0.01", "stopLos": "1"'
    )
    json_type = {"content-type": "application/json"}
    cases: list[tuple[str, str, str, dict[str, str], str | None]] = [
        ("POST", "/v1/orders", "{" + order + "}", {"content-type": "application/grpcx"}, "stopLos"),
        ("POST", "/v1/orders", "{" + order + "}", {"content-type": "application/grpc;x"}, None),
        ("POST", "/v1/orders", "{" + order + "}", {"content-type": "Application/grpc"}, None),
        ("POST", "/v1/orders/", "{" + order + "}", json_type, "stopLos"),
        ("POST", "/v1/orders", "{" + order.replace('"', "'") + "}", json_type, "strict JSON"),
        (
            "POST",
            "/v1/orders",
            "{symbol: 'BTCUSD', side: 'ORDER_SIDE_BUY', type: 'ORDER_TYPE_MARKET', "
            "volume: '0.01', stopLos: '1'}",
            json_type,
            "strict JSON",
        ),
        ("POST", "/v1/orders", "{" + order + ",}", json_type, None),
        ("POST", "/v1/orders", "{" + order + "} /* more */", json_type, None),
        ("PATCH", f"/v1/positions/{pid}/", '{"stopLos": "2"}', json_type, "stopLos"),
        ("PATCH", f"/v1/positions/{pid}", '{"stopLos": null}', json_type, "stopLos"),
        (
            "PATCH",
            f"/v1/positions/{pid}",
            '{"stopLos": "2"}',
            {"content-type": "application/grpcx"},
            "stopLos",
        ),
        ("POST", f"/v1/positions/{pid}/:close", '{"volum": "0.005"}', json_type, "volum"),
        ("POST", f"/v1/positions/{pid}:close", "{'volum': '0.005'}", json_type, None),
        ("POST", f"/v1/positions/{pid}:close", '{"volume": "0.005" "volum": 1}', json_type, None),
        ("POST", f"/v1/positions/{pid}:close", '{"volum\udcff": "0.005"}', json_type, None),
    ]
    for method, path, body, headers, expect in cases:
        raw = body.encode(errors="surrogateescape")  # lone surrogates: bytes not UTF-8
        reply = await api.request(method, path, content=raw, headers={**user.auth, **headers})
        _assert_refused(reply, f"{method} {path} {headers} {body}", expect)
    assert await _state(api, user) == before

    # The same shapes with known fields only still work.
    modified = await api.patch(f"/v1/positions/{pid}/", headers=user.auth, json={"stopLoss": "2"})
    assert modified.status_code == 200, modified.text
    assert modified.json()["position"]["stopLoss"] == "2"


async def test_the_guards_refusals_decode_like_the_services_errors(
    api: httpx.AsyncClient, user: User
) -> None:
    """The edge's unknown-field guard and the engine's own validation: one error shape (code,
    message, ErrorInfo reason, BadRequest naming the field), so a client decodes both alike."""
    order = {"symbol": "BTCUSD", "side": "ORDER_SIDE_BUY", "type": "ORDER_TYPE_MARKET"}
    by_guard = await api.post(
        "/v1/orders", headers=user.auth, json={**order, "volume": "0.01", "stopLos": "1"}
    )
    by_service = await api.post(
        "/v1/orders", headers=user.auth, json={**order, "volume": "0.01", "stopLoss": "x"}
    )
    for reply in (by_guard, by_service):
        _assert_refused(reply, reply.text)
        assert [d["@type"] for d in reply.json()["details"]] == [
            "type.googleapis.com/google.rpc.ErrorInfo",
            "type.googleapis.com/google.rpc.BadRequest",
        ], reply.text
    assert _details(by_guard)[1] == {"stopLos": "unknown field"}
    assert list(_details(by_service)[1]) == ["stop_loss"]

    nested = await api.patch(
        "/v1/positions/1", headers=user.auth, json={"stopLoss": "2", "takeProfit": {"x": 1}}
    )
    _assert_refused(nested, nested.text)

    # A body that is not JSON at all has no field to blame: the reason alone.
    unreadable = await api.post("/v1/orders", headers=user.auth, content=b"{'symbol': 'BTCUSD'}")
    _assert_refused(unreadable, unreadable.text, "strict JSON")
    assert _details(unreadable)[1] == {}


async def test_ids_and_texts_that_only_look_valid_are_never_500(
    api: httpx.AsyncClient, user: User
) -> None:
    before = await _state(api, user)
    for method, path, field in (
        ("DELETE", "/v1/orders/%C2%B2", "order_id"),  # "²": isdigit() says yes, int() says no
        ("POST", "/v1/positions/%C2%B2:close", "position_id"),
        ("PATCH", "/v1/positions/%C2%B2", "position_id"),
        ("DELETE", "/v1/orders/1%D9%A0", "order_id"),  # "1٠"
    ):
        reply = await api.request(
            method, path, headers=user.auth, json={} if method != "DELETE" else None
        )
        assert reply.status_code == 400, (path, reply.text)
        violations = reply.json()["details"][1]["fieldViolations"]
        assert [v["field"] for v in violations] == [field], reply.text
    token = await api.get("/v1/trades", params={"pageToken": "\u00b2"}, headers=user.auth)
    assert token.status_code == 400, token.text
    assert token.json()["details"][1]["fieldViolations"][0]["field"] == "page_token"
    for path, field in (
        ("/v1/quotes/BTC%FF", "symbol"),
        ("/v1/candles/BTC%C3%28?interval=CANDLE_INTERVAL_1M", "symbol"),
    ):
        reply = await api.get(path)
        assert reply.status_code == 400, (path, reply.text)
        violations = reply.json()["details"][1]["fieldViolations"]
        assert [v["field"] for v in violations] == [field], reply.text
        assert "DecodeError" not in reply.text  # no Python exception class
    assert await _state(api, user) == before


async def test_dates_out_of_range_name_their_field(api: httpx.AsyncClient, user: User) -> None:
    candles = await api.get(
        "/v1/candles/BTCUSD",
        params={"interval": "CANDLE_INTERVAL_1M", "endTime": "0001-01-02T00:00:00Z"},
    )
    assert candles.status_code == 400, candles.text
    assert candles.json()["details"][1]["fieldViolations"][0]["field"] == "end_time"
    before = await _state(api, user)
    order = await api.post(
        "/v1/orders",
        headers=user.auth,
        json={
            "symbol": "BTCUSD",
            "side": "ORDER_SIDE_BUY",
            "type": "ORDER_TYPE_LIMIT",
            "volume": "0.01",
            "price": "1000",
            "expireTime": "9999-12-31T23:59:59Z",
        },
    )
    assert order.status_code == 400, order.text
    assert order.json()["details"][1]["fieldViolations"][0]["field"] == "expire_time"
    assert await _state(api, user) == before


@pytest.mark.parametrize("amount", ["100\n", "1\u0660", "1\uff10"])
async def test_deposits_take_plain_ascii_numbers_only(
    api: httpx.AsyncClient, user: User, amount: str
) -> None:
    before = await _state(api, user)
    reply = await api.post("/v1/account:deposit", headers=user.auth, json={"amount": amount})
    _assert_refused(reply, repr(amount))
    assert await _state(api, user) == before


async def test_an_oversized_grpc_message_is_resource_exhausted(stack: Stack) -> None:
    options = [("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(stack.edge, options=options) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        for size in (100_000, 10_000_000):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.GetQuote(market_pb2.GetQuoteRequest(symbol="A" * size), timeout=15)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, raised.value
        assert (await stub.ListInstruments(market_pb2.ListInstrumentsRequest())).instruments


async def test_an_oversized_grpc_web_message_is_resource_exhausted(api: httpx.AsyncClient) -> None:
    message = market_pb2.GetQuoteRequest(symbol="A" * 100_000).SerializeToString()
    frame = b"\x00" + len(message).to_bytes(4, "big") + message
    reply = await api.post(
        "/exness.market.v1.MarketDataService/GetQuote",
        content=frame,
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )
    assert reply.headers.get("grpc-status") == "8", (reply.status_code, reply.headers)


async def test_a_small_gzip_message_that_inflates_is_refused_by_the_service(
    stack: Stack,
) -> None:
    """4 KB on the wire passes the edge's body limit; the service bounds what it inflates."""
    body = inflating_get_quote()
    async with grpc.aio.insecure_channel(stack.edge) as channel:
        get_quote = channel.unary_unary(
            "/exness.market.v1.MarketDataService/GetQuote",
            request_serializer=lambda raw: raw,
            response_deserializer=market_pb2.GetQuoteResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await get_quote(body, compression=grpc.Compression.Gzip, timeout=15)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, raised.value

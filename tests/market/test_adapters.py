"""Exchange websocket adapters against a local websocket server speaking the exchanges' real
message formats, with garbage, disconnects and reconnects; then the Binance adapter through a
real `exness poller` process into MarketData."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from exness.market.v1 import market_pb2, market_pb2_grpc
from websockets.asyncio.server import ServerConnection, serve

from kit.backoff import Backoff
from kit.settings import Settings
from services.poller.exchanges import backpack_feed, binance_feed, run_exchange_feed
from services.poller.sources import FeedStats, QuoteBuffer, RawQuote
from tests.market.conftest import eventually
from tests.market.test_e2e import ROOT, _env

pytestmark = pytest.mark.asyncio(loop_scope="session")

Handler = Callable[[ServerConnection, int], Awaitable[None]]


@asynccontextmanager
async def exchange(handler: Handler) -> AsyncIterator[tuple[str, list[str]]]:
    """A local websocket server; `handler(ws, n)` runs the n-th connection (from 0). Yields
    the base URL and the request paths seen."""
    paths: list[str] = []

    async def on_connect(ws: ServerConnection) -> None:
        paths.append(ws.request.path if ws.request else "")
        await handler(ws, len(paths) - 1)

    async with serve(on_connect, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}", paths


async def take(buffer: QuoteBuffer, n: int, timeout_s: float = 10) -> list[RawQuote]:
    out = []
    for _ in range(n):
        quote = await asyncio.wait_for(buffer.get(), timeout_s)
        assert quote is not None
        out.append(quote)
    return out


def backpack_ticker(market: str, bid: str, ask: str, micros: int) -> str:
    return json.dumps(
        {
            "stream": f"bookTicker.{market}",
            "data": {
                "e": "bookTicker",
                "E": micros + 1,
                "s": market,
                "a": ask,
                "A": "1.000",
                "b": bid,
                "B": "2.000",
                "u": "111063070",
                "T": micros,
            },
        }
    )


async def test_backpack_adapter_survives_garbage_and_disconnects() -> None:
    subscriptions: list[object] = []

    async def handler(ws: ServerConnection, n: int) -> None:
        subscriptions.append(json.loads(await ws.recv()))
        if n == 0:
            await ws.send(backpack_ticker("SOL_USDC", "18.67", "18.70", 1694687965940999))
            await ws.send("}{ not json")
            await ws.send(json.dumps([1, 2, 3]))
            await ws.send(backpack_ticker("DOGE_USDC", "0.1", "0.2", 1694687965941000))
            await ws.send(
                json.dumps(
                    {
                        "stream": "bookTicker.SOL_USDC",
                        "data": {"e": "bookTicker", "s": "SOL_USDC", "a": "18.70", "T": 1},
                    }
                )
            )  # no bid
            await ws.send(backpack_ticker("SOL_USDC", "1e3", "18.70", 1694687965941001))
            await ws.send(json.dumps({"id": 1, "error": {"code": 4005, "message": "Invalid"}}))
            await ws.close()  # the exchange drops us
            return
        if n == 1:
            raise RuntimeError("crash while handshaking")  # an HTTP 500 / abrupt close
        await ws.send(backpack_ticker("BTC_USDC", "65000.1", "65000.9", 1694687966000000))
        await ws.send(backpack_ticker("SOL_USDC", "18.68", "18.71", 1694687966000001))
        await ws.wait_closed()

    buffer, stats = QuoteBuffer(), FeedStats()
    async with exchange(handler) as (url, _):
        task = asyncio.create_task(
            run_exchange_feed(backpack_feed(url), buffer, stats, Backoff(base_s=0.05, cap_s=0.2))
        )
        try:
            quotes = await take(buffer, 3)
        except TimeoutError:
            raise AssertionError(f"stats: {stats}, buffered {len(buffer)}") from None
        finally:
            task.cancel()
    assert quotes == [
        RawQuote("SOLUSD", "18.67", "18.70", 1694687965940999000),
        RawQuote("BTCUSD", "65000.1", "65000.9", 1694687966000000000),
        RawQuote("SOLUSD", "18.68", "18.71", 1694687966000001000),
    ]
    assert dict(stats.skipped) == {"malformed": 4, "unknown_symbol": 1, "error": 1}
    assert stats.connects >= 2
    assert stats.disconnects >= 2
    assert subscriptions[0] == {
        "method": "SUBSCRIBE",
        "id": 1,
        "params": ["bookTicker.BTC_USDC", "bookTicker.ETH_USDC", "bookTicker.SOL_USDC"],
    }


def binance_ticker(symbol: str, bid: str, ask: str, update: int) -> str:
    return json.dumps(
        {
            "stream": f"{symbol.lower()}@bookTicker",
            "data": {
                "u": update,
                "s": symbol,
                "b": bid,
                "B": "31.21000000",
                "a": ask,
                "A": "40.66000000",
            },
        }
    )


async def test_binance_adapter_reconnects_and_maps_symbols() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 0:
            await ws.send(json.dumps({"result": None, "id": 1}))
            await ws.send(binance_ticker("BTCUSDT", "65000.01000000", "65000.02000000", 1))
            await ws.send(b"\x00\xff binary garbage")
            await ws.send(binance_ticker("XRPUSDT", "0.5", "0.6", 2))
            await ws.send(
                json.dumps(
                    {
                        "stream": "btcusdt@bookTicker",
                        "data": {"u": 3, "s": "BTCUSDT", "b": 65000.01, "a": "65000.02"},
                    }
                )
            )  # number, not text
            await ws.close()
            return
        await ws.send(binance_ticker("ETHUSDT", "3200.10000000", "3200.20000000", 4))
        # A raw (not combined) stream payload is understood as well.
        await ws.send(
            json.dumps(
                {"u": 5, "s": "PAXGUSDT", "b": "2400.10", "B": "1", "a": "2400.90", "A": "1"}
            )
        )
        await ws.wait_closed()

    buffer, stats = QuoteBuffer(), FeedStats()
    async with exchange(handler) as (url, paths):
        task = asyncio.create_task(
            run_exchange_feed(binance_feed(url), buffer, stats, Backoff(base_s=0.05, cap_s=0.2))
        )
        try:
            quotes = await take(buffer, 3)
        finally:
            task.cancel()
    assert [(q.symbol, q.bid, q.ask) for q in quotes] == [
        ("BTCUSD", "65000.01000000", "65000.02000000"),
        ("ETHUSD", "3200.10000000", "3200.20000000"),
        ("XAUUSD", "2400.10", "2400.90"),
    ]
    # Spot bookTicker carries no time: receive time, never going backwards.
    assert all(q.time_ns > 1_700_000_000 * 10**9 for q in quotes)
    assert dict(stats.skipped) == {"control": 1, "malformed": 2, "unknown_symbol": 1}
    assert stats.connects == 2
    assert paths[0] == (
        "/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker/"
        "solusdt@bookTicker/eurusdt@bookTicker/paxgusdt@bookTicker"
    )


async def test_binance_through_a_poller_process(
    market_settings: Settings,
    market_address: str,
    market_stub: market_pb2_grpc.MarketDataServiceStub,
) -> None:
    sent = asyncio.Event()

    async def handler(ws: ServerConnection, n: int) -> None:
        for i in range(5):
            await ws.send(binance_ticker("BTCUSDT", f"100.{i}0", f"100.{i}5", i))
            await ws.send("garbage")
        sent.set()
        await ws.wait_closed()

    async with exchange(handler) as (url, _):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            "poller",
            "--source",
            "binance",
            "--url",
            url,
            "--symbols",
            "BTCUSDT=ZTBIN",
            "--market-addr",
            market_address,
            env=_env(market_settings),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:

            async def last_quote() -> bool:
                try:
                    reply = await market_stub.GetQuote(market_pb2.GetQuoteRequest(symbol="ZTBIN"))
                except Exception:
                    return False
                return bool(reply.quote.bid == "100.15")

            await eventually(last_quote, 30)
        finally:
            process.terminate()
            out, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0
    summary = json.loads(out.decode().strip().splitlines()[-1])["poller"]
    assert summary["skipped"] == {"malformed": 5}
    assert summary["accepted"] == 5
    # markup 0.50 on ZTBIN: the last raw quote 100.40/100.45 -> 100.15/100.70
    quote = (await market_stub.GetQuote(market_pb2.GetQuoteRequest(symbol="ZTBIN"))).quote
    assert (quote.bid, quote.ask) == ("100.15", "100.70")

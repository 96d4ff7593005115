"""Live exchange feeds over websockets: Backpack `bookTicker.<SYMBOL>` and Binance
`<symbol>@bookTicker`, in the exchanges' own message formats.

Backpack (wss://ws.backpack.exchange, subscribe with {"method": "SUBSCRIBE", "params": [...]})
sends {"stream": "bookTicker.SOL_USDC", "data": {"e": "bookTicker", "E": <µs>, "s": "SOL_USDC",
"a": "18.70", "A": "1.000", "b": "18.67", "B": "2.000", "u": "111063070", "T": <µs>}}.
Binance spot combined streams (wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker)
send {"stream": "btcusdt@bookTicker", "data": {"u": 400900217, "s": "BTCUSDT", "b": "25.35190000",
"B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}}; spot bookTicker carries no time,
so the receive time is used (futures add "E"/"T" in ms, which are used when present).

Anything else is counted by reason and skipped: "malformed" (not JSON, missing or mistyped
fields, prices that are not plain decimals), "unknown_symbol" (a market we do not map),
"control" (subscription replies), "error" (error replies from the exchange).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import connect

from kit.backoff import Backoff
from kit.decimals import parse_decimal
from services.poller.sources import FeedStats, QuoteBuffer, RawQuote, now_ns

log = logging.getLogger(__name__)

BACKPACK_URL = "wss://ws.backpack.exchange"
BINANCE_URL = "wss://stream.binance.com:9443"

# Exchange market -> platform symbol.
BACKPACK_SYMBOLS: dict[str, str] = {
    "BTC_USDC": "BTCUSD",
    "ETH_USDC": "ETHUSD",
    "SOL_USDC": "SOLUSD",
}
BINANCE_SYMBOLS: dict[str, str] = {
    "BTCUSDT": "BTCUSD",
    "ETHUSDT": "ETHUSD",
    "SOLUSDT": "SOLUSD",
    "EURUSDT": "EURUSD",
    "PAXGUSDT": "XAUUSD",  # PAXG: one troy ounce of gold per token
}

Parsed = RawQuote | str
MALFORMED, UNKNOWN_SYMBOL, CONTROL, ERROR = "malformed", "unknown_symbol", "control", "error"
_MAX_PRICE_TEXT = 40


def _decode(raw: str | bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return message if isinstance(message, dict) else None


def _payload(message: dict[str, Any]) -> dict[str, Any] | str:
    """The event inside a combined-stream envelope (or the message itself), or a skip reason
    for replies to our requests."""
    if "error" in message:
        return ERROR
    if "id" in message and "result" in message:
        return CONTROL
    data = message.get("data", message) if "stream" in message else message
    return data if isinstance(data, dict) else MALFORMED


def _prices(data: dict[str, Any]) -> tuple[str, str] | None:
    bid, ask = data.get("b"), data.get("a")
    if not isinstance(bid, str) or not isinstance(ask, str):
        return None
    if len(bid) > _MAX_PRICE_TEXT or len(ask) > _MAX_PRICE_TEXT:
        return None
    try:
        parse_decimal(bid)
        parse_decimal(ask)
    except ValueError:
        return None
    return bid, ask


def parse_backpack(raw: str | bytes, symbols: Mapping[str, str]) -> Parsed:
    message = _decode(raw)
    if message is None:
        return MALFORMED
    data = _payload(message)
    if isinstance(data, str):
        return data
    if data.get("e") != "bookTicker" or not isinstance(data.get("s"), str):
        return MALFORMED
    platform = symbols.get(data["s"])
    if platform is None:
        return UNKNOWN_SYMBOL
    prices = _prices(data)
    stamp = data.get("T", data.get("E"))  # engine time, else event time; microseconds
    if prices is None or not isinstance(stamp, int) or isinstance(stamp, bool) or stamp <= 0:
        return MALFORMED
    return RawQuote(platform, prices[0], prices[1], stamp * 1000)


def parse_binance(raw: str | bytes, symbols: Mapping[str, str]) -> Parsed:
    message = _decode(raw)
    if message is None:
        return MALFORMED
    data = _payload(message)
    if isinstance(data, str):
        return data
    if not isinstance(data.get("s"), str) or "u" not in data:
        return MALFORMED
    platform = symbols.get(data["s"])
    if platform is None:
        return UNKNOWN_SYMBOL
    prices = _prices(data)
    if prices is None:
        return MALFORMED
    stamp = data.get("T", data.get("E"))  # futures only; milliseconds
    if stamp is None:
        when = now_ns()
    elif isinstance(stamp, int) and not isinstance(stamp, bool) and stamp > 0:
        when = stamp * 1_000_000
    else:
        return MALFORMED
    return RawQuote(platform, prices[0], prices[1], when)


@dataclass(frozen=True)
class ExchangeFeed:
    name: str
    url: str
    subscribe: list[dict[str, Any]]  # sent after every (re)connect
    parse: Callable[[str | bytes], Parsed]


def backpack_feed(
    base_url: str = BACKPACK_URL, symbols: Mapping[str, str] = BACKPACK_SYMBOLS
) -> ExchangeFeed:
    streams = [f"bookTicker.{market}" for market in symbols]
    return ExchangeFeed(
        "backpack",
        base_url,
        [{"method": "SUBSCRIBE", "params": streams, "id": 1}],
        lambda raw: parse_backpack(raw, symbols),
    )


def binance_feed(
    base_url: str = BINANCE_URL, symbols: Mapping[str, str] = BINANCE_SYMBOLS
) -> ExchangeFeed:
    streams = "/".join(f"{market.lower()}@bookTicker" for market in symbols)
    return ExchangeFeed(
        "binance",
        f"{base_url.rstrip('/')}/stream?streams={streams}",
        [],
        lambda raw: parse_binance(raw, symbols),
    )


async def run_exchange_feed(
    feed: ExchangeFeed, out: QuoteBuffer, stats: FeedStats, backoff: Backoff | None = None
) -> None:
    """Runs until cancelled: connects, subscribes, forwards quotes; on any disconnect or
    connection failure waits (backoff with jitter) and reconnects."""
    backoff = backoff or Backoff()
    last_ns: dict[str, int] = {}
    while True:
        try:
            async with connect(
                feed.url,
                open_timeout=10,
                ping_interval=20,
                ping_timeout=20,
                close_timeout=2,
                max_size=1 << 20,
            ) as ws:
                stats.connects += 1
                log.info("feed connected", extra={"feed": feed.name, "url": feed.url})
                for request in feed.subscribe:
                    await ws.send(json.dumps(request))
                async for raw in ws:
                    stats.received += 1
                    parsed = feed.parse(raw)
                    if isinstance(parsed, str):
                        stats.skipped[parsed] += 1
                        if parsed == ERROR:
                            log.warning(
                                "feed error reply",
                                extra={"feed": feed.name, "reply": str(raw)[:300]},
                            )
                        continue
                    # Receive-time stamps may step back with the wall clock; never send that.
                    previous = last_ns.get(parsed.symbol, 0)
                    if parsed.time_ns < previous:
                        parsed = RawQuote(parsed.symbol, parsed.bid, parsed.ask, previous)
                    last_ns[parsed.symbol] = parsed.time_ns
                    out.put_nowait_drop_oldest(parsed)
                    stats.emitted += 1
                    backoff.reset()
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            log.warning("feed connection failed", extra={"feed": feed.name, "error": repr(exc)})
        except Exception:  # a bug must not stop the feed for good: log it and reconnect
            log.exception("feed failed unexpectedly", extra={"feed": feed.name})
        stats.disconnects += 1
        delay = await backoff.sleep()
        log.info("feed reconnecting", extra={"feed": feed.name, "after_s": round(delay, 2)})

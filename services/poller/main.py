"""`exness poller`: the price feed. Reads one source and streams its quotes into
MarketData.PublishQuotes with the service credential.

Sources: synthetic (default; offline seeded random walk over the instruments table, needs
DATABASE_URL), backpack and binance (live websockets), replay (a tape file, see replay.py).
A finite source (replay, or --count) ends the process once MarketData has taken every quote.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg

from kit.data.instruments import read_instruments
from kit.logs import setup_logging
from kit.obs.metrics import serve_metrics
from kit.obs.tracing import setup_tracing
from kit.settings import Settings, require
from services.poller import metrics
from services.poller.exchanges import (
    BACKPACK_SYMBOLS,
    BACKPACK_URL,
    BINANCE_SYMBOLS,
    BINANCE_URL,
    backpack_feed,
    binance_feed,
    run_exchange_feed,
)
from services.poller.publish_stream import FatalPublishError, MarketPublisher
from services.poller.replay import replay
from services.poller.sources import FeedStats, QuoteBuffer, RawQuote
from services.poller.synthetic import RandomWalk, WalkSpec

log = logging.getLogger(__name__)

SOURCES = ("synthetic", "backpack", "binance", "replay")
STATS_EVERY_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="synthetic",
        help="price source (default: synthetic, the offline feed)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="quotes per second in total: synthetic (default 20) and replay "
        "(default 0: as fast as MarketData takes them)",
    )
    parser.add_argument("--seed", type=int, default=1, help="synthetic feed seed (default 1)")
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="synthetic: stop after this many quotes (default: run forever)",
    )
    parser.add_argument("--tape", type=Path, help="replay: the tape file (JSON lines)")
    parser.add_argument(
        "--symbols",
        default="",
        help="synthetic: comma-separated platform symbols (default: all "
        "enabled instruments); backpack/binance: MARKET=SYMBOL pairs, "
        "e.g. BTC_USDC=BTCUSD,ETH_USDC=ETHUSD",
    )
    parser.add_argument(
        "--url",
        default="",
        help=f"exchange websocket base URL (default: {BACKPACK_URL} or {BINANCE_URL})",
    )
    parser.add_argument(
        "--market-addr",
        default="",
        help="MarketData address, or several comma-separated (one per replica: quotes go to any"
        " healthy one); default: $EXNESS_MARKET_ADDR",
    )


def _mapping(text: str, default: dict[str, str]) -> dict[str, str]:
    if not text:
        return default
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(pair) != 2 or not pair[0] or not pair[1] for pair in pairs):
        raise SystemExit("exness poller: --symbols must be MARKET=SYMBOL pairs for this source")
    return {market: symbol for market, symbol in pairs}


async def load_walk_specs(database_url: str, only: list[str]) -> list[WalkSpec]:
    try:
        async with await psycopg.AsyncConnection.connect(database_url, connect_timeout=10) as conn:
            instruments = await read_instruments(conn)
    except psycopg.Error as exc:
        raise SystemExit(f"exness poller: cannot read instruments: {exc}".splitlines()[0]) from None
    specs = [
        WalkSpec(i.symbol, i.synthetic_start, i.synthetic_vol, i.price_decimals)
        for i in instruments.values()
        if not only or i.symbol in only
    ]
    unknown = sorted(set(only) - {s.symbol for s in specs})
    if unknown:
        raise SystemExit(f"exness poller: not listed instruments: {', '.join(unknown)}")
    return specs


async def _pump(quotes: AsyncIterator[RawQuote], buffer: QuoteBuffer, stats: FeedStats) -> None:
    async for quote in quotes:
        await buffer.put(quote)
        stats.emitted += 1
    buffer.close()


async def _report(stats: FeedStats, publisher: MarketPublisher, buffer: QuoteBuffer) -> None:
    while True:
        await asyncio.sleep(STATS_EVERY_S)
        log.info(
            "poller stats",
            extra={
                **stats.as_dict(),
                "sent": publisher.sent,
                "buffered": len(buffer),
                "dropped": buffer.dropped,
            },
        )


async def serve(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging("poller", settings.log_level, settings.log_format)
    setup_tracing("poller", settings.data_dir)
    stats = FeedStats()
    buffer = QuoteBuffer()
    address = args.market_addr or settings.market_addr
    publisher = MarketPublisher(
        address,
        settings.resolved_service_token(),
        args.source,
        trace_ratio=settings.quote_trace_ratio,
    )
    metrics.register(args.source, stats, buffer=buffer, publisher=publisher)

    source: asyncio.Task[None]
    if args.source == "synthetic":
        require(
            settings, "poller", "database_url", why="the synthetic feed reads the instruments table"
        )
        only = [s for s in args.symbols.split(",") if s]
        walk = RandomWalk(
            await load_walk_specs(settings.database_url, only),
            args.rate if args.rate is not None else 20.0,
            args.seed,
        )
        source = asyncio.create_task(_pump(walk.run(args.count), buffer, stats))
    elif args.source == "replay":
        if args.tape is None or not args.tape.is_file():
            raise SystemExit("exness poller: --source replay needs --tape FILE (an existing file)")
        source = asyncio.create_task(
            _pump(replay(args.tape, args.rate or 0.0, stats), buffer, stats)
        )
    elif args.source == "backpack":
        feed = backpack_feed(args.url or BACKPACK_URL, _mapping(args.symbols, BACKPACK_SYMBOLS))
        source = asyncio.create_task(run_exchange_feed(feed, buffer, stats))
    else:
        feed = binance_feed(args.url or BINANCE_URL, _mapping(args.symbols, BINANCE_SYMBOLS))
        source = asyncio.create_task(run_exchange_feed(feed, buffer, stats))
    # Only once the source is set up: a poller whose /metrics answers has accepted its
    # arguments (`exness up` waits for that rather than guessing a settling time).
    serve_metrics(settings.bind_host, settings.poller_metrics_port)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    reporter = asyncio.create_task(_report(stats, publisher, buffer))
    publishing = asyncio.create_task(publisher.run(buffer))
    stop_wait = asyncio.create_task(stopping.wait())
    code = 0
    try:
        await asyncio.wait({publishing, stop_wait, source}, return_when=asyncio.FIRST_COMPLETED)
        if source.done() and source.exception() is not None:
            raise source.exception()  # type: ignore[misc]
        if stopping.is_set() or (source.done() and not publishing.done()):
            # Stop reading; give what is buffered a few seconds to reach MarketData.
            source.cancel()
            buffer.close()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(
                    asyncio.shield(publishing), 10.0 if stopping.is_set() else None
                )
        if publishing.done():
            publishing.result()
    except FatalPublishError as exc:
        print(f"exness poller: {exc}", file=sys.stderr)
        code = 2
    finally:
        for task in (source, reporter, publishing, stop_wait):
            task.cancel()
        await asyncio.gather(source, reporter, publishing, stop_wait, return_exceptions=True)
    summary = {
        **stats.as_dict(),
        "sent": publisher.sent,
        "accepted": publisher.accepted,
        "rejected": dict(publisher.rejected),
        "dropped": buffer.dropped,
    }
    log.info("poller finished", extra=summary)
    print(json.dumps({"poller": summary}), flush=True)
    return code


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        return asyncio.run(serve(args, settings))
    except KeyboardInterrupt:
        return 130

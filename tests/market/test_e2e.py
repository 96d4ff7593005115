"""End to end with real processes: `exness poller` (replay of a known tape, and the synthetic
feed) -> PublishQuotes -> broker -> tick writer -> PostgreSQL -> GetCandles; and `exness
market` itself started as a process."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from exness.market.v1 import market_pb2, market_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from kit.settings import Settings
from services.market.main import MarketApp, build
from tests.market.conftest import SERVICE_TOKEN, eventually
from tests.support.infra import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
# ZTAPE: markup 1.00 -> the stored bid is the raw bid minus 0.50 (2 decimals, exact).
TAPE = [
    # minute 10:00
    (0, "100.00", "100.20"),
    (10, "101.50", "101.70"),
    (20, "99.25", "99.45"),
    (59, "100.75", "100.95"),
    # minute 10:01 (one quote only)
    (75, "102.00", "102.30"),
    # minute 10:03 (10:02 has none)
    (185, "98.00", "98.10"),
    (190, "97.50", "97.60"),
    (200, "103.10", "103.20"),
    (239, "101.00", "101.05"),
]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "EXNESS_SERVICE_TOKEN": SERVICE_TOKEN,
            "EXNESS_DATA_DIR": str(settings.data_dir),
            "EXNESS_LOG_FORMAT": "text",
            # This checkout's generated code, not whichever the virtualenv installed.
            "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}",
            **extra,
        }
    )
    return env


async def run_poller(
    settings: Settings, market_address: str, *args: str, timeout_s: float = 60
) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "poller",
        "--market-addr",
        market_address,
        *args,
        env=_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode == 0, err.decode()[-3000:]
    summary = json.loads(out.decode().strip().splitlines()[-1])["poller"]
    assert isinstance(summary, dict)
    return summary


def _ohlc(prices: list[Decimal]) -> tuple[str, str, str, str, int]:
    return (str(prices[0]), str(max(prices)), str(min(prices)), str(prices[-1]), len(prices))


async def test_tape_replay_reaches_candles(
    tmp_path: Path,
    market_settings: Settings,
    market_address: str,
    market_stub: market_pb2_grpc.MarketDataServiceStub,
) -> None:
    tape = tmp_path / "tape.jsonl"
    lines = [
        json.dumps(
            {
                "symbol": "ZTAPE",
                "bid": bid,
                "ask": ask,
                "time": (T0 + timedelta(seconds=s)).isoformat().replace("+00:00", "Z"),
            }
        )
        for s, bid, ask in TAPE
    ]
    lines.insert(3, "this is not json")
    lines.insert(
        5,
        json.dumps(
            {
                "symbol": "ZTAPE",
                "bid": "5",
                "ask": "4",  # crossed
                "time": (T0 + timedelta(seconds=70)).isoformat(),
            }
        ),
    )
    tape.write_text("\n".join(lines) + "\n")

    summary = await run_poller(
        market_settings, market_address, "--source", "replay", "--tape", str(tape)
    )
    assert summary["accepted"] == len(TAPE)
    assert summary["rejected"] == {"crossed": 1}
    assert summary["skipped"] == {"malformed": 1}

    request = market_pb2.GetCandlesRequest(
        symbol="ZTAPE", interval=market_pb2.CANDLE_INTERVAL_1M, limit=100
    )
    request.start_time.FromDatetime(T0)
    request.end_time.FromDatetime(T0 + timedelta(minutes=5))

    async def candles() -> list[market_pb2.Candle]:
        response = await market_stub.GetCandles(request)
        total = sum(c.tick_count for c in response.candles)
        return list(response.candles) if total == len(TAPE) else []

    await eventually(candles, 30)
    got = await candles()
    bids = {s: Decimal(bid) - Decimal("0.50") for s, bid, _ in TAPE}
    by_minute: dict[int, list[Decimal]] = {}
    for s, _, _ in TAPE:
        by_minute.setdefault(s // 60, []).append(bids[s])
    expected = [((T0 + timedelta(minutes=m)), _ohlc(p)) for m, p in sorted(by_minute.items())]
    assert [
        (c.open_time.ToDatetime(tzinfo=UTC), (c.open, c.high, c.low, c.close, c.tick_count))
        for c in got
    ] == expected
    assert all(c.closed for c in got)

    # Wider intervals come from the same rollups: one 5m and one 1d candle of all ticks.
    all_bids = [bids[s] for s, _, _ in TAPE]
    for interval in (market_pb2.CANDLE_INTERVAL_5M, market_pb2.CANDLE_INTERVAL_1D):
        wide = market_pb2.GetCandlesRequest(symbol="ZTAPE", interval=interval)
        wide.start_time.FromDatetime(T0 - timedelta(days=1))
        wide.end_time.FromDatetime(T0 + timedelta(days=1))
        response = await market_stub.GetCandles(wide)
        assert [(c.open, c.high, c.low, c.close, c.tick_count) for c in response.candles] == [
            _ohlc(all_bids)
        ]

    # limit keeps the newest candles, oldest first.
    request.limit = 2
    newest = (await market_stub.GetCandles(request)).candles
    assert [c.open_time.ToDatetime(tzinfo=UTC) for c in newest] == [
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=3),
    ]


async def test_synthetic_feed_through_the_poller(
    market_settings: Settings,
    market_address: str,
    db_pool: AsyncConnectionPool,
    market_stub: market_pb2_grpc.MarketDataServiceStub,
) -> None:
    summary = await run_poller(
        market_settings,
        market_address,
        "--source",
        "synthetic",
        "--symbols",
        "ZTSYN",
        "--rate",
        "400",
        "--count",
        "200",
        "--seed",
        "7",
    )
    assert summary["accepted"] == 200
    assert summary["rejected"] == {}

    async def stored() -> int:
        async with db_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM ticks WHERE symbol = 'ZTSYN' AND source = 'synthetic'"
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def all_stored() -> bool:
        return await stored() == 200

    await eventually(all_stored, 30)
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT min(bid), max(ask), bool_and(ask >= bid AND bid > 0),"
            " bool_and(ask - bid >= 0.20) FROM ticks WHERE symbol = 'ZTSYN'"
        )
        low, high, ordered, marked_up = await cur.fetchone()  # type: ignore[misc]
    assert ordered
    assert marked_up
    # A walk starting at 250 with 0.2 %/s volatility stays near it over half a second.
    assert Decimal(200) < low <= high < Decimal(300)
    quote = (await market_stub.GetQuote(market_pb2.GetQuoteRequest(symbol="ZTSYN"))).quote
    assert Decimal(quote.ask) - Decimal(quote.bid) >= Decimal("0.20")


async def test_market_process_serves_and_stops_cleanly(market_settings: Settings) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "market",
        "--port",
        str(port),
        "--role",
        "api",
        env=_env(market_settings),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(
                health_pb2.HealthCheckRequest(service="exness.market.v1.MarketDataService"),
                wait_for_ready=True,
                timeout=30,
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = market_pb2_grpc.MarketDataServiceStub(channel)
            listed = await stub.ListInstruments(market_pb2.ListInstrumentsRequest(), timeout=10)
            assert {"BTCUSD", "ETHUSD", "SOLUSD", "EURUSD", "XAUUSD"} <= {
                i.symbol for i in listed.instruments
            }
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
        assert process.returncode == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_market_without_infrastructure_says_so(market_settings: Settings) -> None:
    env = _env(market_settings)
    env.pop("DATABASE_URL")
    env.pop("KAFKA_BOOTSTRAP_SERVERS")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "market",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert err.decode().strip() == (
        "exness market: DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS not set "
        "(`exness up` sets them for you)"
    )


async def test_the_poller_fails_over_to_another_replica(
    market_settings: Settings,
    market_app: MarketApp,
    market_address: str,
    db_pool: AsyncConnectionPool,
) -> None:
    """Given every MarketData replica, the poller publishes through any healthy one: when the
    replica it streams to goes away, quotes keep arriving through another (they used to go to
    replica 0 only)."""
    settings = dataclasses.replace(
        market_settings, auth_addr=f"127.0.0.1:{market_settings.auth_port}"
    )
    first = build(settings, db_pool, port=0, role="api")
    await first.start()
    assert first.servicer is not None
    assert first.server is not None
    assert market_app.servicer is not None
    second_before = market_app.servicer.publish_stats.accepted
    replicas = f"127.0.0.1:{first.server.bound_port},{market_address}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "cli.main", "poller", "--market-addr", replicas),
        *("--source", "synthetic", "--symbols", "ZTFOV", "--rate", "50"),
        env=_env(market_settings),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    stopped = False
    try:
        # The first replica listed is tried first.
        await eventually(lambda: first.servicer.publish_stats.accepted >= 20, 30)  # type: ignore[union-attr]
        assert market_app.servicer.publish_stats.accepted == second_before
        await first.stop()  # the replica goes away with the poller's call open
        stopped = True
        await eventually(
            lambda: market_app.servicer.publish_stats.accepted >= second_before + 20,  # type: ignore[union-attr]
            30,
        )
        assert process.returncode is None, "the poller gave up"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
        if not stopped:
            await first.stop()
    assert process.returncode == 0, err.decode()[-3000:]

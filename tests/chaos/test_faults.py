"""Kill -9 each component of `exness up` under load from several traders (half through Envoy,
half straight at the engine), one after another on one platform. After each: the platform
recovers by itself (the time is printed), health said so (NOT_SERVING or unreachable during,
SERVING after), no order stays unanswered, every acknowledged order is stored as answered and a
retry with its client_order_id gets the same answer, ledgers sum, no tick is stored twice, and
trading.events covers the journal. Then a burst of calls with tiny deadlines, and the stalled
partition armed at start-up."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import grpc
import pytest
import pytest_asyncio
from exness.market.v1 import market_pb2, market_pb2_grpc
from exness.trading.v1 import trading_pb2_grpc

from tests.chaos.conftest import STALL_AFTER_S, STALLED_SYMBOL, Platform, partition_of
from tests.chaos.load import (
    REFUSED,
    HealthRecorder,
    Load,
    Trader,
    check_database,
    new_trader,
    order,
    place,
    wait_until,
)
from tests.trading.test_crash import _read_events_with_kcat

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]

TRADERS = 6
RECOVERY_LIMIT_S = 90.0


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def traders(platform: Platform) -> list[Trader]:
    state = platform.state()
    targets = [state["edge"] if i % 2 else state["trading"] for i in range(TRADERS)]
    made = [await new_trader(state["auth"], target) for target in targets]
    # The engine needs a fresh quote of the symbol before it fills anything.
    await wait_until_async(lambda: _fills(made[0]), 60, "a first fill")
    return made


async def _fills(trader: Trader) -> bool:
    return await place(trader, f"warm-up-{time.monotonic_ns()}") and bool(trader.acked)


async def wait_until_async(check: Callable[[], object], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout_s, f"{what} not within {timeout_s}s"
        await asyncio.sleep(0.25)


async def survive(
    platform: Platform,
    traders: list[Trader],
    fault: str,
    kill: Callable[[], None],
    goes_down: set[str],
) -> None:
    recorder = HealthRecorder(platform.addresses(), platform.state()["edge_url"]).start()
    load = Load(traders)
    try:
        await wait_until(recorder.all_serving_now, 60, f"everything serving before {fault}")
        load.start()
        await asyncio.sleep(2.0)
        acked_before = load.acked()
        killed_at = time.monotonic()
        kill()
        for key in goes_down:
            await wait_until(
                lambda k=key: recorder.down_since(k, killed_at),
                30,
                f"{key} seen down",
            )
        await wait_until(recorder.all_serving_now, RECOVERY_LIMIT_S, f"health after {fault}")
        serving_at = time.monotonic()
        await wait_until(
            lambda: (load.answered_at or 0) > serving_at, RECOVERY_LIMIT_S, "an order answered"
        )
        recovered = (load.answered_at or 0) - killed_at
        await asyncio.sleep(1.0)
    finally:
        await load.stop()
        recorder.stop()
    await load.settle()
    print(
        f"{fault}: recovered in {recovered:.1f}s (health SERVING after "
        f"{serving_at - killed_at:.1f}s); acknowledged {acked_before} before, "
        f"{load.acked() - acked_before} during and after"
    )
    await check_invariants(platform, traders)


async def check_invariants(platform: Platform, traders: list[Trader]) -> None:
    state = platform.state()
    check_database(state["database_url"], traders)
    # Retries with the same client_order_id return the first answer (place() asserts it).
    for trader in traders:
        for key in list(trader.acked)[-3:]:
            assert await place(trader, key, timeout_s=10), f"retry of {key} unanswered"
    await check_events_cover_journal(state["database_url"], state["kafka"])


async def check_events_cover_journal(database_url: str, bootstrap: str) -> None:
    import psycopg

    with psycopg.connect(database_url) as conn:
        journal = {int(r[0]) for r in conn.execute("SELECT sequence FROM trading_journal")}

    async def covered() -> bool:
        seen = {event.sequence for _, event in await _read_events_with_kcat(bootstrap)}
        return journal <= seen

    await wait_until_async(covered, 60, "trading.events covering the journal")


def _pid(platform: Platform, name: str) -> int:
    state = platform.state()
    if name in state["children"]:
        return int(state["children"][name])
    if name == "Envoy":
        return int(state["edge_pid"])
    return int(state["infra"][name])


@pytest.mark.parametrize(
    ("component", "goes_down"),
    [
        ("Trading", {"trading"}),
        ("MarketData", {"market"}),
        ("Auth", {"auth"}),
        ("Envoy", {"edge"}),
        ("broker", {"market"}),
        ("postgres", {"auth", "market", "trading"}),
    ],
)
async def test_kill_9(
    platform: Platform, traders: list[Trader], component: str, goes_down: set[str]
) -> None:
    await survive(
        platform,
        traders,
        f"kill -9 {component}",
        lambda: platform.kill(_pid(platform, component)),
        goes_down,
    )
    assert f"{'PostgreSQL' if component == 'postgres' else component}" in platform.output_text()


@pytest.mark.parametrize(
    ("component", "goes_down"),
    [("broker", {"market"}), ("postgres", {"auth", "market", "trading"})],
)
async def test_frozen(
    platform: Platform, traders: list[Trader], component: str, goes_down: set[str]
) -> None:
    """SIGSTOP: the process is there and the kernel still accepts its connections, but it
    answers nothing. `exness up` replaces it after its limit, and does not replace the services
    that are NOT_SERVING because of it meanwhile."""
    before = len(platform.output_text().splitlines())
    await survive(
        platform,
        traders,
        f"SIGSTOP {component}",
        lambda: os.kill(_pid(platform, component), signal.SIGSTOP),
        goes_down,
    )
    name = "PostgreSQL" if component == "postgres" else component
    restarts = [
        line
        for line in platform.output_text().splitlines()[before:]
        if line.strip().endswith("restarting it")
    ]
    assert any(line.strip().startswith(f"{name} was not healthy") for line in restarts), restarts
    # Only it (a restart may take two tries); no service was replaced for its outage.
    assert all(line.strip().startswith(f"{name} ") for line in restarts), restarts


# What an operator's graceful stop sends: SIGTERM, except to PostgreSQL, whose SIGTERM is a
# "smart" shutdown that waits for every client session to end (pooled ones never do); its
# graceful stop is pg_ctl's default "fast" mode, SIGINT.
GRACEFUL = {"postgres": signal.SIGINT}


# Not the embedded broker (it keeps its log in memory: its graceful stop is test_kill_9's case).
# Envoy exits at once on SIGTERM; its restart opens the listener only once Auth's keys are
# loaded, so the traders going through it see no UNAUTHENTICATED (place() raises on one).
@pytest.mark.parametrize(
    ("component", "goes_down"),
    [
        ("Trading", {"trading"}),
        ("MarketData", {"market"}),
        ("Auth", {"auth"}),
        ("Envoy", {"edge"}),
        ("postgres", {"auth", "market", "trading"}),
    ],
)
async def test_graceful_stop(
    platform: Platform, traders: list[Trader], component: str, goes_down: set[str]
) -> None:
    """A component stopped gracefully under load: it drains, `exness up` starts it again, and
    nothing acknowledged is lost. The engine answers the calls in flight at the signal rather
    than cancelling them (clients do not retry CANCELLED)."""
    restarts = platform.output_text().count("restarting it")
    direct = [t for t in traders if t.target == platform.state()["trading"]]
    cancelled = sum(t.failures["CANCELLED"] for t in direct)
    sig = GRACEFUL.get(component, signal.SIGTERM)
    await survive(
        platform,
        traders,
        f"{sig.name} {component}",
        lambda: os.kill(_pid(platform, component), sig),
        goes_down,
    )
    assert platform.output_text().count("restarting it") > restarts, "it was not started again"
    if component == "Trading":
        assert sum(t.failures["CANCELLED"] for t in direct) == cancelled, [
            dict(t.failures) for t in direct
        ]


async def test_a_burst_of_tiny_deadlines_harms_nobody(
    platform: Platform, traders: list[Trader]
) -> None:
    """120 PlaceOrder calls with 2-30 ms deadlines; then every trader is still answered."""
    trader = traders[0]
    async with grpc.aio.insecure_channel(platform.state()["trading"]) as channel:
        stub = trading_pb2_grpc.TradingServiceStub(channel)

        async def hasty(i: int) -> grpc.StatusCode:
            try:
                await stub.PlaceOrder(
                    order(f"hasty-{time.monotonic_ns()}-{i}"),
                    metadata=trader.metadata,
                    timeout=0.002 + (i % 15) * 0.002,
                )
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        codes = await asyncio.gather(*(hasty(i) for i in range(120)))
        # A refusal by the rules (a quote gone stale in the fault before) is an answer too.
        assert set(codes) <= {
            grpc.StatusCode.OK,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.UNAVAILABLE,
            *REFUSED,
        }, codes
    started = time.monotonic()
    for t in traders:
        assert await place(t, f"after-burst-{time.monotonic_ns()}", timeout_s=10)
    print(f"tiny deadlines: every trader answered {time.monotonic() - started:.1f}s after")
    await check_invariants(platform, traders)


async def test_the_stalled_partition_was_found_and_recovered(
    platform: Platform, traders: list[Trader]
) -> None:
    """MarketData's first fan-out consumer was armed not to read STALLED_SYMBOL's partition:
    the watch found it, MarketData said NOT_SERVING meanwhile, a new consumer reads it, and
    its quote is current (and not marked stale)."""
    log = platform.log("market.log")
    partition = partition_of(STALLED_SYMBOL)
    assert (
        f"fault injected: market-fanout stops reading market.quotes partitions {{{partition}}}"
        in log
    )
    assert f"market.quotes[{partition}] is stalled" in log
    assert "quote fan-out is down" in log
    assert "quote fan-out is up again" in log
    async with grpc.aio.insecure_channel(platform.state()["market"]) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)

        async def current() -> bool:
            reply = await stub.GetQuote(market_pb2.GetQuoteRequest(symbol=STALLED_SYMBOL))
            age_s = time.time() - reply.quote.time.ToNanoseconds() / 1e9
            return not reply.quote.stale and age_s < STALL_AFTER_S + 5

        await wait_until_async(current, 30, f"a current {STALLED_SYMBOL} quote")

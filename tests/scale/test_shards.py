"""Two engine shards behind one edge: each user's calls reach the engine of the shard in their
token, both shards trade at once, and a shard that dies takes only its own users down."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import grpc
import psycopg
import pytest
from exness.trading.v1 import trading_pb2
from exness_client import ExnessClient, ExnessError

from tests.market.conftest import eventually
from tests.scale.conftest import SHARDS, Platform

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHARD_ID_SHIFT = 48  # ids carry the shard that allocated them in their high bits
ORDERS_PER_USER = 4


def _calls_to(platform: Platform, shard: int) -> int:
    return platform.counter(f"cluster.trading_shard_{shard}.upstream_rq_completed")


async def _trade(client: ExnessClient, orders: int) -> list[str]:
    """Market orders, one after another; the ids acknowledged."""
    acked = []
    for _ in range(orders):
        reply = await client.place_order("BTCUSD", "buy", volume="0.01")
        assert reply.order.status == trading_pb2.ORDER_STATUS_FILLED, reply.order
        acked.append(reply.order.order_id)
    return acked


async def test_users_of_both_shards_trade_at_once_each_on_their_shard(
    platform: Platform, clients: list[ExnessClient]
) -> None:
    users = {shard: [await platform.user_on(shard) for _ in range(2)] for shard in range(SHARDS)}
    for group in users.values():
        clients.extend(group)
    before = {shard: _calls_to(platform, shard) for shard in range(SHARDS)}

    placed = await asyncio.gather(
        *(_trade(c, ORDERS_PER_USER) for group in users.values() for c in group)
    )

    # Each shard's engine allocated the ids of its own users' orders ...
    flat = [(shard, c) for shard, group in users.items() for c in group]
    for (shard, _), order_ids in zip(flat, placed, strict=True):
        assert {int(o) >> SHARD_ID_SHIFT for o in order_ids} == {shard}
    # ... and Envoy sent every one of those calls to that shard's cluster, none to the other.
    for shard in range(SHARDS):
        sent = _calls_to(platform, shard) - before[shard]
        assert sent == len(users[shard]) * ORDERS_PER_USER, (shard, sent)


def _engine_ready(log_text: str) -> list[dict[str, object]]:
    ready = []
    for line in log_text.splitlines():
        if '"engine ready"' in line:
            ready.append(json.loads(line))
    return ready


async def _status_of(client: ExnessClient) -> grpc.StatusCode:
    try:
        await client.account()
    except ExnessError as exc:
        return exc.code
    return grpc.StatusCode.OK


async def test_a_killed_shard_fails_only_its_own_users_and_recovers_with_everything(
    platform: Platform, clients: list[ExnessClient]
) -> None:
    survivor = await platform.user_on(0, retry=False)
    victim = await platform.user_on(1, retry=False)
    clients.extend([survivor, victim])
    acked = await _trade(victim, ORDERS_PER_USER)

    events: list[trading_pb2.AccountEvent] = []

    async def follow() -> None:
        async for event in survivor.stream_account():
            events.append(event)

    stream = asyncio.create_task(follow())
    try:
        await _trade(survivor, 1)
        await eventually(lambda: events, 15)  # StreamAccount of shard 0 delivers

        os.kill(platform.pid("Trading shard 1"), signal.SIGKILL)
        deadline = time.monotonic() + 15
        while (code := await _status_of(victim)) == grpc.StatusCode.OK:
            assert time.monotonic() < deadline, "shard 1 still answered after being killed"
            await asyncio.sleep(0.05)
        assert code == grpc.StatusCode.UNAVAILABLE, code

        # While shard 1 is down, shard 0's users trade and their stream keeps flowing.
        seen = len(events)
        during = await _trade(survivor, 3)

        def streamed() -> set[str]:
            return {e.order.order_id for e in events[seen:] if e.HasField("order")}

        await eventually(lambda: set(during) <= streamed(), 15)
        assert await _status_of(victim) == grpc.StatusCode.UNAVAILABLE, "shard 1 back too soon"
    finally:
        stream.cancel()

    # `exness up` restarts the engine; it rebuilds shard 1 from the database.
    deadline = time.monotonic() + 90
    while await _status_of(victim) != grpc.StatusCode.OK:
        assert time.monotonic() < deadline, "shard 1 did not come back"
        await asyncio.sleep(0.5)
    # Each acknowledged market order opened a position that is still there.
    opened = {p.order_id for p in await victim.positions()}
    assert set(acked) <= opened, "an acknowledged order of shard 1 was lost"
    # The restarted engine says (in its own log) that it loaded exactly shard 1's accounts,
    # not the other shard's.
    ready = _engine_ready(platform.log("trading-shard-1.log").read_text())
    assert len(ready) >= 2, "no restart in shard 1's log"
    assert ready[-1]["shard"] == 1
    with psycopg.connect(platform.state["database_url"]) as conn:
        rows = conn.execute("SELECT shard, count(*) FROM trading_accounts GROUP BY shard")
        accounts: dict[int, int] = dict(rows.fetchall())
    assert accounts[0] > 0
    assert ready[-1]["accounts"] == accounts[1]

"""trading.events with two shards: each shard's relay publishes its own journal, whose sequence
numbers start at 1 on every shard, so the same sequence appears once per shard. Every record
says which shard it comes from (the `shard` header, equal to its account's shard), so consumers
dedupe by (shard, sequence) and nothing of one shard is taken for a duplicate of another."""

from __future__ import annotations

from collections import defaultdict

import pytest
from aiokafka import TopicPartition
from exness.trading.v1 import trading_pb2
from exness_client import ExnessClient

from kit.data.kafka import EVENTS_TOPIC, make_consumer
from tests.market.conftest import eventually
from tests.scale.conftest import SHARDS, Platform

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHARD_ID_SHIFT = 48


async def _read_all(bootstrap: str) -> list[tuple[dict[str, bytes], trading_pb2.AccountEvent]]:
    consumer = make_consumer(bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata partitions_for_topic reads
        partitions = [
            TopicPartition(EVENTS_TOPIC, p)
            for p in sorted(consumer.partitions_for_topic(EVENTS_TOPIC))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[tuple[dict[str, bytes], trading_pb2.AccountEvent]] = []
        while True:
            batches = await consumer.getmany(timeout_ms=2000, max_records=5000)
            if not batches:
                return records
            for messages in batches.values():
                for m in messages:
                    event = trading_pb2.AccountEvent.FromString(m.value)
                    records.append((dict(m.headers), event))
    finally:
        await consumer.stop()


async def test_each_shard_relays_its_journal_and_says_so(
    platform: Platform, clients: list[ExnessClient]
) -> None:
    for shard in range(SHARDS):
        client = await platform.user_on(shard)
        clients.append(client)
        await client.place_order("BTCUSD", "buy", volume="0.01")
    bootstrap = str(platform.state["kafka"])

    async def both_shards_published() -> bool:
        shards = {int(e.account_id) >> SHARD_ID_SHIFT for _, e in await _read_all(bootstrap)}
        return shards == set(range(SHARDS))

    await eventually(both_shards_published, 30, 1.0)
    records = await _read_all(bootstrap)
    by_key: dict[tuple[int, int], bytes] = {}
    sequences: dict[int, set[int]] = defaultdict(set)
    for headers, event in records:
        shard = int(event.account_id) >> SHARD_ID_SHIFT
        assert headers.get("shard") == str(shard).encode(), (headers, event.account_id)
        # At least once: a repeat of (shard, sequence) is the same event, never another one.
        payload = event.SerializeToString(deterministic=True)
        assert by_key.setdefault((shard, event.sequence), payload) == payload
        sequences[shard].add(event.sequence)
    # Sequence numbers alone collide across shards: they must never be deduped alone.
    assert sequences[0] & sequences[1]

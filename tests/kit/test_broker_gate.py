"""The embedded broker as `exness up` runs it (Tansu behind its gate), restarted after a kill -9
while a producer keeps producing: no client reaches the new broker before its topics exist, so
every record acknowledged afterwards is read back at the offset it was acknowledged at.

Without the gate, the producer's records reached the new broker before the topics' re-creation,
which reset the partitions' offsets: produces then failed with `AlreadyExists` in the broker's
log and readers found other records at the acknowledged offsets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from cli.devstack.broker import GatedBroker
from kit.data.kafka import QUOTES_TOPIC, TOPIC_PARTITIONS, make_consumer, make_producer
from tests.support.infra import free_port

pytestmark = pytest.mark.asyncio(loop_scope="function")

# A slow topic creation after the restart: the window in which clients used to get in.
CREATE_DELAY_S = 0.5


@pytest.fixture
def gated(session_dir: Path) -> Iterator[GatedBroker]:
    broker = GatedBroker(
        free_port(), free_port(), TOPIC_PARTITIONS, log_path=session_dir / "gated-broker.log"
    )
    create = broker.broker.create_topics

    def slow_create(topics: Mapping[str, int]) -> None:
        time.sleep(CREATE_DELAY_S)
        create(topics)

    broker.broker.create_topics = slow_create  # type: ignore[method-assign]
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def test_a_closed_gate_refuses_connections_and_an_open_one_forwards(
    gated: GatedBroker,
) -> None:
    assert not _refused(gated.gate.port)
    await asyncio.to_thread(gated.gate.close)
    assert _refused(gated.gate.port)
    await asyncio.to_thread(gated.gate.open)
    producer = make_producer(gated.bootstrap)
    await producer.start()
    try:
        metadata = await producer.send_and_wait(QUOTES_TOPIC, b"through the gate", key=b"k")
    finally:
        await producer.stop()
    assert metadata.offset == 0


async def test_records_acknowledged_after_a_restart_are_where_they_were_acknowledged(
    gated: GatedBroker, session_dir: Path
) -> None:
    producer = make_producer(gated.bootstrap)
    await producer.start()
    acked: list[tuple[int, int, bytes]] = []  # partition, offset, value
    restarted_at = 0
    stop = asyncio.Event()

    async def produce() -> None:
        sequence = 0
        while not stop.is_set():
            value = str(sequence).encode()
            try:
                metadata = await producer.send_and_wait(
                    QUOTES_TOPIC, value, key=f"symbol-{sequence % 7}".encode()
                )
                acked.append((metadata.partition, metadata.offset, value))
            except KafkaError:
                await asyncio.sleep(0.05)
            sequence += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(produce())
    try:
        await asyncio.sleep(1.0)
        assert gated.process is not None
        os.kill(gated.process.pid, signal.SIGKILL)
        gated.process.wait()
        await asyncio.sleep(0.3)  # the producer keeps trying meanwhile
        restarted_at = len(acked)
        await asyncio.to_thread(gated.restart)
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await task
        await producer.stop()

    after = acked[restarted_at:]
    assert len(after) > 20, f"only {len(after)} records acknowledged after the restart"
    log = (session_dir / "gated-broker.log").read_text(errors="replace")
    assert "AlreadyExists" not in log

    # What a reader finds at each acknowledged offset (the broker forgot what came before).
    consumer = make_consumer(
        gated.bootstrap, QUOTES_TOPIC, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[tuple[int, int], bytes] = {}
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(found) < len(after):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    assert record.value is not None
                    found[(tp.partition, record.offset)] = record.value
    finally:
        await consumer.stop()
    misplaced = [(p, o, v) for p, o, v in after if found.get((p, o)) != v]
    assert not misplaced, f"{len(misplaced)} of {len(after)} not where acknowledged"

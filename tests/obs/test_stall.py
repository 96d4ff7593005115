"""Item 6 of issue 12, the partition case: a consumer that stops advancing on a partition
while producers keep appending to it fires KafkaPartitionStalled, for that consumer and that
partition only. The stall is a real one: the tick writer's COPY waits on a lock held on the
ticks table, so its reader fills its queue and stops, while the fan-out and the engine go on
reading the same partition."""

from __future__ import annotations

import threading
import time

import grpc
import psycopg
import pytest
from exness.market.v1 import market_pb2_grpc

from kit.rpc.interceptors import SERVICE_TOKEN_HEADER
from services.market.tick_writer import TICK_WRITER_GROUP
from tests.obs.conftest import STALL_WINDOW_S, Stack
from tests.obs.feed import quotes
from tests.obs.scrape import prometheus_api, scrape, select

pytestmark = pytest.mark.slow  # runs against a whole `exness up`


def _stalled(stack: Stack) -> list[dict[str, str]]:
    alerts = prometheus_api(stack.prometheus, "/api/v1/alerts")["alerts"]
    return [
        a["labels"]
        for a in alerts
        if a["labels"]["alertname"] == "KafkaPartitionStalled" and a["state"] == "firing"
    ]


def _writer_positions(stack: Stack) -> dict[str, float]:
    samples = select(
        scrape(stack.metrics_url("market")),
        "exness_kafka_consumer_position",
        consumer=TICK_WRITER_GROUP,
    )
    return {dict(labels)["partition"]: value for labels, value in samples.items()}


def test_a_stalled_consumer_partition_fires_the_stall_alert(stack: Stack) -> None:
    stop = threading.Event()
    with (
        psycopg.connect(stack.state["database_url"]) as lock,
        grpc.insecure_channel(stack.state["market"]) as channel,
    ):
        lock.execute("LOCK TABLE ticks IN ACCESS EXCLUSIVE MODE")  # held until rollback
        call = market_pb2_grpc.MarketDataServiceStub(channel).PublishQuotes.future(
            quotes(["BTCUSD"], stop), metadata=[(SERVICE_TOKEN_HEADER, stack.service_token)]
        )
        try:
            deadline = time.monotonic() + STALL_WINDOW_S + 40
            while not (firing := _stalled(stack)):
                assert time.monotonic() < deadline, "KafkaPartitionStalled never fired"
                time.sleep(0.5)
            before = _writer_positions(stack)
        finally:
            lock.rollback()  # the tick writer goes on
        try:
            partitions = {labels["partition"] for labels in firing}
            # Only the tick writer, only on the partition BTCUSD's quotes go to.
            assert {labels["consumer"] for labels in firing} == {TICK_WRITER_GROUP}
            assert len(partitions) == 1
            (partition,) = partitions
            # Once the lock is gone, the writer moves on from where it stood.
            deadline = time.monotonic() + 30
            while _writer_positions(stack)[partition] <= before[partition]:
                assert time.monotonic() < deadline, "the tick writer did not resume"
                time.sleep(0.5)
        finally:
            stop.set()
            call.result(timeout=10)

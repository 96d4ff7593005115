"""The cost of the embedded broker's gate (cli/devstack/broker_gate.py): records/s produced
(acks=all, 200-byte values, the platform's producer settings) and consumed, straight at the
broker against through the gate, in the same run and on the same broker. Rounds alternate so
that machine noise falls on both. `exness up` is the only user of the gate; production Kafka
has none. Target: gate / direct >= 0.8 for both directions.

Starts its own broker and gate. `python -m bench.broker_gate [--records N] [--rounds R]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from multiprocessing import Event, Process
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

from cli.devstack.broker import GatedBroker
from kit.data.kafka import QUOTES_TOPIC, TOPIC_PARTITIONS, make_consumer, make_producer
from kit.ports import free_port

VALUE = b"q" * 200


async def produce(bootstrap: str, records: int) -> float:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        started = time.perf_counter()
        pending = [
            await producer.send(QUOTES_TOPIC, VALUE, key=f"symbol-{i % 16}".encode())
            for i in range(records)
        ]
        await asyncio.gather(*pending)
        return records / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def consume(bootstrap: str, records: int) -> float:
    consumer = make_consumer(bootstrap, QUOTES_TOPIC, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(batch) for batch in batches.values())
        return records / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def serve_gated(port: int, private_port: int, root: str, ready: EventType, done: EventType) -> None:
    """The broker and its gate in a process of their own, as in `exness up` (whose process
    forwards nothing else): the gate does not share this process's interpreter lock."""
    broker = GatedBroker(port, private_port, TOPIC_PARTITIONS, log_path=Path(root) / "broker.log")
    broker.start()
    ready.set()
    done.wait()
    broker.stop()


async def run(records: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="exness-bench-gate-") as root:
        port, private_port = free_port(), free_port()
        ready, done = Event(), Event()
        server = Process(target=serve_gated, args=(port, private_port, root, ready, done))
        server.start()
        if not ready.wait(30):
            raise SystemExit("the broker did not start")
        direct, gated = f"127.0.0.1:{private_port}", f"127.0.0.1:{port}"
        rates: dict[str, list[float]] = {}
        try:
            for _ in range(rounds):
                for name, bootstrap in (("direct", direct), ("gate", gated)):
                    rates.setdefault(f"produce {name}", []).append(
                        await produce(bootstrap, records)
                    )
                    # Each consume reads the first `records` of a log that keeps growing.
                    rates.setdefault(f"consume {name}", []).append(
                        await consume(bootstrap, records)
                    )
        finally:
            done.set()
            server.join(30)
    print(f"{records} records x {rounds} rounds, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    for name, values in rates.items():
        print(
            f"  {name:16} best {max(values):>9,.0f}/s  median {statistics.median(values):>9,.0f}/s"
            f"  spread {min(values):,.0f}-{max(values):,.0f}"
        )
    for direction in ("produce", "consume"):
        best = max(rates[f"{direction} gate"]) / max(rates[f"{direction} direct"])
        median = statistics.median(rates[f"{direction} gate"]) / statistics.median(
            rates[f"{direction} direct"]
        )
        print(f"  {direction}: gate / direct = {best:.2f} (best), {median:.2f} (median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.records, args.rounds))


if __name__ == "__main__":
    main()

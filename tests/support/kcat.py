"""Reading a topic with kcat, an independent Kafka client."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

from aiokafka import AIOKafkaConsumer

from kit.data.kafka_probe import probe_offsets

# kcat 1.7 (librdkafka 2.0.2) cannot parse the embedded broker's ApiVersions v3 and ListOffsets
# replies: version probing off, absolute offsets, and the log ends taken from a fetch
# (kit.data.kafka_probe) rather than from ListOffsets, which under-reports them.
KCAT_COMPAT = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0"]


async def read_topic(bootstrap: str, topic: str, fmt: str) -> list[bytes]:
    """Every record of `topic` formatted by kcat's `-f FMT` (which must end each record with a
    newline and hold no binary field), partition by partition."""
    return (await read_raw(bootstrap, topic, fmt)).splitlines()


async def read_values(bootstrap: str, topic: str) -> list[bytes]:
    """The value of every record of `topic`, partition by partition."""
    out = await read_raw(bootstrap, topic, "%S|%s")
    values, pos = [], 0
    while pos < len(out):
        bar = out.index(b"|", pos)
        size = int(out[pos:bar])
        values.append(out[bar + 1 : bar + 1 + size])
        pos = bar + 1 + size
    return values


async def read_raw(bootstrap: str, topic: str, fmt: str) -> bytes:
    """kcat's output for every record of `topic` formatted by `-f FMT`."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is needed (apt-get install kcat)"
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await probe.start()
    try:
        partitions = probe.partitions_for_topic(topic) or set()
        points = await probe_offsets(probe, topic, {p: 0 for p in partitions})
    finally:
        await probe.stop()
    output = b""
    for partition, point in sorted(points.items()):
        if point.log_end == 0:
            continue
        process = await asyncio.create_subprocess_exec(
            kcat,
            "-b",
            bootstrap,
            *KCAT_COMPAT,
            "-C",
            "-t",
            topic,
            "-p",
            str(partition),
            "-o",
            "0",
            "-c",
            str(point.log_end),
            "-q",
            "-f",
            fmt,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()[-2000:]
        output += out
    return output

"""Faults a test (or an operator rehearsing an incident) can inject into a running process.

EXNESS_FAULT_STALL="client-id:partition[,client-id:partition...]" makes the first consumer of
this process with that client id stop reading that partition of its topic, silently (it is
paused: no error, no log line), the way a wedged consumer stalled in production. Only the
first such consumer: one that re-creates itself to recover reads again, as after a real
stall.
"""

from __future__ import annotations

import logging
import os

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

STALL_ENV = "EXNESS_FAULT_STALL"
_injected: set[str] = set()


def stall_targets(client_id: str, environ: dict[str, str] | None = None) -> set[int]:
    """The partitions EXNESS_FAULT_STALL names for `client_id`."""
    raw = (environ if environ is not None else os.environ).get(STALL_ENV, "")
    found = set()
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, partition = item.rpartition(":")
        if name == client_id and partition.isdigit():
            found.add(int(partition))
    return found


def inject_stall(consumer: AIOKafkaConsumer, topic: str, client_id: str) -> set[int]:
    """Pauses the named partitions of an assigned consumer, once per client id and process;
    the partitions it paused."""
    if client_id in _injected:
        return set()
    targets = stall_targets(client_id)
    assigned = {tp.partition for tp in consumer.assignment() if tp.topic == topic}
    hit = targets & assigned
    if hit:
        _injected.add(client_id)
        consumer.pause(*(TopicPartition(topic, p) for p in sorted(hit)))
        log.warning("fault injected: %s stops reading %s partitions %s", client_id, topic, hit)
    return hit

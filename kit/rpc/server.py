"""grpc.aio server start-up shared by every service: health (grpc.health.v1), reflection,
the request pipeline, and a graceful stop on SIGTERM/SIGINT that drains in-flight calls."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kit.obs.rpc_metrics import server_interceptors
from kit.obs.tracing_rpc import TracingInterceptor
from kit.rpc.drain import DrainGate
from kit.rpc.errors import StartupError

log = logging.getLogger(__name__)

# Large enough for any legitimate request, small enough that a flood of megabyte bodies
# cannot exhaust memory; over it gRPC answers RESOURCE_EXHAUSTED.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class PortInUseError(StartupError):
    pass


@dataclass
class ServiceSpec:
    """One gRPC service to host: its full name and how to add its servicer."""

    name: str  # e.g. "exness.auth.v1.AuthService"
    add: Callable[[grpc.aio.Server], None]


@dataclass
class GrpcServer:
    services: Sequence[ServiceSpec]
    interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
    host: str = "127.0.0.1"
    port: int = 0
    grace_s: float = 10.0
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._drain = DrainGate()
        self._stopping = asyncio.Event()
        self.bound_port = 0

    async def start(self) -> int:
        server = grpc.aio.server(
            # Tracing first: its span and request id cover the whole pipeline. Metrics next:
            # they see every call, those refused while draining included.
            interceptors=[
                TracingInterceptor(),
                *server_interceptors(),
                self._drain,
                *self.interceptors,
            ],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ],
        )
        for spec in self.services:
            spec.add(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [spec.name for spec in self.services]
        reflection.enable_server_reflection(
            [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        address = f"{self.host}:{self.port}"
        try:
            self.bound_port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise PortInUseError(f"cannot listen on {address}: is the port already taken?") from exc
        if self.bound_port == 0:
            raise PortInUseError(f"cannot listen on {address}: is the port already taken?")
        await server.start()
        self._server = server
        for name in [*names, ""]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"address": f"{self.host}:{self.bound_port}", "services": names})
        return self.bound_port

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Not serving for health checks at once (the edge stops routing here), then up to
        `grace_s` for in-flight calls (new ones refused, see kit.rpc.drain), then the service's
        own clean-up."""
        if self._server is None:
            return
        deadline = time.monotonic() + self.grace_s
        await self.health.enter_graceful_shutdown()
        if not await self._drain.drain(self.grace_s):
            log.warning("calls still in progress after the grace period")
        await self._server.stop(max(0.0, deadline - time.monotonic()))
        self._server = None
        for hook in reversed(self.on_stop):
            try:
                await hook()
            except Exception:
                log.exception("error while stopping")
        log.info("stopped")

    async def serve_until_signalled(
        self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        await self._stopping.wait()
        log.info("stopping: draining in-flight calls", extra={"grace_s": self.grace_s})
        await self.stop()


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Runs a service's async main; a clear message instead of a stack trace for known
    start-up failures."""
    try:
        asyncio.run(main())
    except StartupError as exc:
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:
        pass

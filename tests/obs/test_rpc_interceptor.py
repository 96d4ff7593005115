"""The RPC metrics interceptor on a grpc.aio server of its own: the code a call ended with,
for plain and async handlers, a handler that raises, and one that aborts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import REGISTRY

from kit.obs.rpc_metrics import RpcMetrics

SERVICE = "obs.test.Probe"


def _handled(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "grpc_server_handled_total",
        {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": method, "grpc_code": code},
    )
    return value or 0.0


def plain(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def fails(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError("a bug")


async def refuses(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no")
    raise AssertionError("unreachable")


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            name: grpc.unary_unary_rpc_method_handler(fn)
            for name, fn in (("Plain", plain), ("Fails", fails), ("Refuses", refuses))
        },
    )
    server = grpc.aio.server(interceptors=[RpcMetrics()])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as client:
        yield client
    await server.stop(None)


@pytest.mark.parametrize(
    ("method", "code"),
    [("Plain", "OK"), ("Fails", "UNKNOWN"), ("Refuses", "FAILED_PRECONDITION")],
)
async def test_each_call_is_counted_with_the_code_the_client_got(
    channel: grpc.aio.Channel, method: str, code: str
) -> None:
    before = _handled(method, code)
    call = channel.unary_unary(f"/{SERVICE}/{method}")
    try:
        await call(b"ping")
        got = "OK"
    except grpc.aio.AioRpcError as exc:
        got = exc.code().name
    assert got == code
    assert _handled(method, code) == before + 1

"""GrpcServer's graceful stop under continuous load, on a real grpc.aio server: every call that
reached a handler is answered, calls that arrive while it drains are refused UNAVAILABLE (safe
to retry), none is CANCELLED, and a call that outlives the grace period is cut at its end."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from kit.rpc.server import GrpcServer, ServiceSpec

SLEEP = "/test.Slow/Sleep"


def server_with(delay_s: float, grace_s: float) -> GrpcServer:
    """A server whose one method takes `delay_s`, as a handler waiting for its commit does
    (raw bytes in and out: no generated code needed)."""

    async def sleep(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await asyncio.sleep(delay_s)
        return request

    handler = grpc.method_handlers_generic_handler(
        "test.Slow", {"Sleep": grpc.unary_unary_rpc_method_handler(sleep)}
    )
    return GrpcServer(
        services=[ServiceSpec("test.Slow", lambda s: s.add_generic_rpc_handlers((handler,)))],
        grace_s=grace_s,
    )


async def test_stop_under_load_answers_or_refuses_but_never_cancels() -> None:
    server = server_with(0.005, grace_s=10)
    port = await server.start()
    codes: collections.Counter[grpc.StatusCode] = collections.Counter()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call_sleep = channel.unary_unary(SLEEP)

        async def client() -> None:
            while True:  # call after call until the server turns it away
                try:
                    await call_sleep(b"x", timeout=30)
                except grpc.aio.AioRpcError as exc:
                    codes[exc.code()] += 1
                    return
                codes[grpc.StatusCode.OK] += 1

        load = [asyncio.create_task(client()) for _ in range(64)]
        deadline = time.monotonic() + 20
        while codes[grpc.StatusCode.OK] < 200:  # well under way, however busy the machine
            assert time.monotonic() < deadline, "the load never got going"
            await asyncio.sleep(0.05)
        await server.stop()
        await asyncio.wait_for(asyncio.gather(*load), 10)
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes


async def test_a_call_longer_than_the_grace_period_is_cut_then() -> None:
    server = server_with(30, grace_s=0.5)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = asyncio.ensure_future(channel.unary_unary(SLEEP)(b"x", timeout=30))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await server.stop()
        stopped_after = time.monotonic() - started
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        else:
            raise AssertionError("a 30 s call was answered within a 0.5 s grace period")
    assert code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert stopped_after < 5


PUBLISH = "/test.Slow/Publish"


async def test_a_client_stream_ends_at_the_stop_with_what_it_received() -> None:
    """A client stream that never ends by itself (the poller's PublishQuotes) is answered, OK,
    with what the handler received, as soon as the stop begins: it does not hold the stop for
    the grace period, and it is not CANCELLED."""

    async def publish(requests: Any, context: grpc.aio.ServicerContext) -> bytes:
        return str(len([r async for r in requests])).encode()

    handler = grpc.method_handlers_generic_handler(
        "test.Slow", {"Publish": grpc.stream_unary_rpc_method_handler(publish)}
    )
    server = GrpcServer(
        services=[ServiceSpec("test.Slow", lambda s: s.add_generic_rpc_handlers((handler,)))],
        grace_s=10,
    )
    port = await server.start()
    sent = asyncio.Event()

    async def messages() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"quote"
        sent.set()
        await asyncio.Event().wait()  # a feed that has nothing more to say for now

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = asyncio.ensure_future(channel.stream_unary(PUBLISH)(messages(), timeout=30))
        await asyncio.wait_for(sent.wait(), 10)
        await asyncio.sleep(0.2)  # the server has read them
        started = time.monotonic()
        await server.stop()
        stopped_after = time.monotonic() - started
        answer = await asyncio.wait_for(call, 5)
    assert answer == b"3"
    assert stopped_after < 5, f"the stop waited {stopped_after:.1f}s for the client stream"

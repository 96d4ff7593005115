"""Envoy killed (kill -9) while clients keep calling through it with valid tokens, and started
again by `exness up` as it restarts any crashed component. While it is down calls may fail to
connect or be UNAVAILABLE; a restarted Envoy must never judge a token without Auth's keys, so
no call with a valid token is ever answered UNAUTHENTICATED (gRPC) or 401 (REST), also when
Auth does not answer at the moment Envoy starts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import grpc
import httpx
from exness.auth.v1 import auth_pb2, auth_pb2_grpc
from exness.trading.v1 import trading_pb2, trading_pb2_grpc

from cli.devstack.children import STATE_FILE
from gateway.local_replies import JWKS_UNAVAILABLE
from kit.rpc.probes import http_ok
from tests.edge.conftest import Stack, User, register

# Reconnect at once when the edge is back: the moments right after its restart are the ones
# these tests are about, and gRPC's default reconnect backoff (1 s and growing) skips them.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
]
PAUSE_S = 0.02
RESTART_LIMIT_S = 60.0
AFTER_RESTART_S = 3.0
REFUSED = (":401", ":UNAUTHENTICATED")


@dataclass
class Outcomes:
    """What each client saw, in order: (monotonic time, client, outcome)."""

    seen: list[tuple[float, str, str]] = field(default_factory=list)
    # Bodies of the REST answers that were neither 200 nor a transport error.
    bodies: list[str] = field(default_factory=list)

    def add(self, client: str, outcome: str) -> None:
        self.seen.append((time.monotonic(), client, outcome))

    def ok_since(self, client: str, since: float) -> bool:
        return any(c == client and o == "ok" and t > since for t, c, o in self.seen)

    def rest_answered_since(self, since: float) -> bool:
        """Whether a REST call got an HTTP answer (so reached a listening Envoy) since then."""
        return any(
            t > since and c == "rest" and (o == "ok" or o.isdigit()) for t, c, o in self.seen
        )

    def counts(self) -> Counter[str]:
        return Counter(f"{c}:{o}" for _, c, o in self.seen)

    def refused(self) -> dict[str, int]:
        return {k: n for k, n in self.counts().items() if k.endswith(REFUSED)}


async def rest_calls(
    stack: Stack, user: User, out: Outcomes, stop: asyncio.Event, timeout_s: float
) -> None:
    async with httpx.AsyncClient(base_url=stack.url, trust_env=False, timeout=timeout_s) as api:
        while not stop.is_set():
            try:
                reply = await api.get("/v1/account", headers=user.auth)
            except httpx.HTTPError as exc:
                out.add("rest", type(exc).__name__)
            else:
                out.add("rest", "ok" if reply.status_code == 200 else str(reply.status_code))
                if reply.status_code != 200:
                    out.bodies.append(reply.text)
            await asyncio.sleep(PAUSE_S)


async def grpc_calls(
    stack: Stack, user: User, out: Outcomes, stop: asyncio.Event, timeout_s: float
) -> None:
    metadata = (("authorization", f"Bearer {user.access_token}"),)
    async with grpc.aio.insecure_channel(stack.edge, options=FAST_RECONNECT) as channel:
        trading = trading_pb2_grpc.TradingServiceStub(channel)
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if n % 2:
                    await trading.GetAccount(
                        trading_pb2.GetAccountRequest(), metadata=metadata, timeout=timeout_s
                    )
                else:
                    await auth.GetMe(auth_pb2.GetMeRequest(), metadata=metadata, timeout=timeout_s)
                out.add("grpc", "ok")
            except grpc.aio.AioRpcError as exc:
                out.add("grpc", exc.code().name)
            await asyncio.sleep(PAUSE_S)


@asynccontextmanager
async def calling(stack: Stack, user: User, timeout_s: float) -> AsyncIterator[Outcomes]:
    """Two REST and two gRPC clients calling with `user`'s token until the block ends; they
    have been answered (both kinds) when the block starts."""
    out, stop = Outcomes(), asyncio.Event()
    clients = [
        asyncio.create_task(call(stack, user, out, stop, timeout_s))
        for call in (rest_calls, rest_calls, grpc_calls, grpc_calls)
    ]
    try:
        started = time.monotonic()
        await until(
            lambda: out.ok_since("rest", started) and out.ok_since("grpc", started),
            30,
            "calls answered before the fault",
        )
        yield out
    finally:
        stop.set()
        await asyncio.gather(*clients)


def state(stack: Stack) -> dict[str, object] | None:
    """What `exness up` last recorded (it rewrites its state after a restart)."""
    try:
        found: dict[str, object] = json.loads((stack.data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None  # being rewritten
    return found


def edge_pid(stack: Stack) -> int | None:
    found = state(stack)
    pid = found.get("edge_pid") if found else None
    return int(str(pid)) if pid else None


def auth_pid(stack: Stack) -> int:
    found = state(stack)
    assert found is not None
    children = found["children"]
    assert isinstance(children, dict)
    return int(children["Auth"])


def edge_healthy(stack: Stack) -> bool:
    """Envoy's /healthz: every cluster has a healthy host again."""
    return http_ok(f"{stack.url}/healthz", timeout_s=1)


async def until(check: Callable[[], object], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, f"{what} not within {timeout_s}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def kill_edge(stack: Stack) -> float:
    """kill -9 of Envoy; returns once `exness up` has started a new one, with that time. Every
    call answered after it was answered by the new Envoy (the killed one answers nothing, and
    an answer it gave just before the kill may be recorded just after it)."""
    killed = edge_pid(stack)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    await until(lambda: edge_pid(stack) not in (None, killed), RESTART_LIMIT_S, "a new Envoy")
    return time.monotonic()


async def test_a_restarted_edge_never_refuses_a_valid_token(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    user = await register(api)
    async with calling(stack, user, timeout_s=3.0) as out:
        restarted_at = await kill_edge(stack)
        back_s = await until(
            lambda: out.ok_since("rest", restarted_at) and out.ok_since("grpc", restarted_at),
            RESTART_LIMIT_S,
            "calls answered after the restart",
        )
        await asyncio.sleep(AFTER_RESTART_S)  # and they keep being answered
    await until(lambda: edge_healthy(stack), RESTART_LIMIT_S, "the edge healthy again")
    counts = out.counts()
    print(f"edge restart: answered again {back_s:.1f}s after the new Envoy; {dict(counts)}")
    assert not out.refused(), f"valid tokens refused around the restart: {dict(counts)}"
    # The calls did span the outage: some failed while Envoy was down.
    assert any(o != "ok" and t < restarted_at for t, _, o in out.seen), dict(counts)


async def test_an_edge_restarted_while_auth_does_not_answer_says_unavailable(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    """Auth frozen (SIGSTOP) while Envoy restarts: Envoy cannot fetch the keys, waits for them
    (its listener stays closed) until the fetch times out, then opens and answers calls that
    need a token UNAVAILABLE / 503, never UNAUTHENTICATED / 401; once Auth answers again,
    calls succeed."""
    user = await register(api)
    auth = auth_pid(stack)
    # Longer than Envoy's wait for the keys (the fetch's timeout), so calls reach the new
    # listener while the keys are still missing.
    async with calling(stack, user, timeout_s=8.0) as out:
        os.kill(auth, signal.SIGSTOP)
        try:
            restarted_at = await kill_edge(stack)
            await until(
                lambda: out.rest_answered_since(restarted_at), 30, "the new Envoy answering"
            )
            await asyncio.sleep(2.0)  # calls keep arriving while Auth stays frozen
        finally:
            with suppress(ProcessLookupError):  # replaced meanwhile by `exness up`
                os.kill(auth, signal.SIGCONT)
        resumed_at = time.monotonic()
        back_s = await until(
            lambda: out.ok_since("rest", resumed_at) and out.ok_since("grpc", resumed_at),
            RESTART_LIMIT_S,
            "calls answered after Auth resumed",
        )
    # Later tests find the platform as they expect it: Envoy sees Auth healthy again.
    await until(lambda: edge_healthy(stack), RESTART_LIMIT_S, "the edge healthy again")
    counts = out.counts()
    print(f"edge restart, Auth frozen: answered {back_s:.1f}s after it resumed; {dict(counts)}")
    assert not out.refused(), f"valid tokens refused while Auth was frozen: {dict(counts)}"
    # The new Envoy did answer before the keys were there: with the retryable refusal.
    assert counts["rest:503"] + counts["grpc:UNAVAILABLE"] > 0, dict(counts)
    unavailable = [json.loads(body) for body in out.bodies if JWKS_UNAVAILABLE.message in body]
    assert unavailable, out.bodies[-3:]
    assert unavailable[0]["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert unavailable[0]["details"][0]["reason"] == "SERVICE_UNAVAILABLE"

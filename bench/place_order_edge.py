"""PlaceOrder through the Envoy edge as REST/JSON vs direct gRPC to the engine, at 64 concurrent
clients, measured side by side in one run against one platform (`exness up` on free ports).

Target: REST through Envoy >= 0.8 of direct gRPC throughput. Also shown: native gRPC through
Envoy, to separate the cost of the proxy hop from the cost of JSON transcoding. Each mode runs
for the same time with the same number of clients (split over worker processes, so one Python
client process is not the bottleneck); every request is a durable market order.

    .venv/bin/python -m bench.place_order_edge [--seconds 15] [--clients 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import httpx
from exness.trading.v1 import trading_pb2, trading_pb2_grpc

from tests.support.processes import start_up, stop_up, up_env, wait_for_state

PASSWORD = "bench-password-1"
TARGET = 0.8


def start_platform(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = up_env(
        EXNESS_EDGE_AUTH_RATE_BURST="100000",
        EXNESS_LOG_LEVEL="WARNING",
        EXNESS_EDGE_ACCESS_LOG="/dev/null",
    )
    output = data_dir.parent / "up.out"
    process = start_up(data_dir, output, env)
    try:
        return process, wait_for_state(data_dir, process, output, timeout_s=180)
    except AssertionError as exc:  # a message, not a test failure
        stop_up(process)
        raise SystemExit(f"exness up did not start (see {output}): {exc}") from None


async def make_users(edge_url: str, count: int) -> list[str]:
    gate = asyncio.Semaphore(4)  # password hashing is deliberately slow: not all at once
    async with httpx.AsyncClient(base_url=edge_url, trust_env=False, timeout=60) as api:

        async def one() -> str:
            async with gate:
                return await _register(api)

        return list(await asyncio.gather(*[one() for _ in range(count)]))


async def _register(api: httpx.AsyncClient) -> str:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    reply = await api.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    reply.raise_for_status()
    token = str(reply.json()["tokens"]["accessToken"])
    funded = await api.post(
        "/v1/account:deposit",
        json={"amount": "1000000"},
        headers={"authorization": f"Bearer {token}"},
    )
    funded.raise_for_status()
    return token


async def _wait_for_quote(edge_url: str) -> None:
    async with httpx.AsyncClient(base_url=edge_url, trust_env=False) as api:
        for _ in range(100):
            if (await api.get("/v1/quotes/BTCUSD")).status_code == 200:
                return
            await asyncio.sleep(0.2)
    raise SystemExit("no BTCUSD quote from the synthetic feed")


# --- the load, in worker processes ------------------------------------------------------------


async def _rest_clients(
    edge_url: str, tokens: list[str], seconds: float
) -> tuple[list[float], int]:
    # aiohttp: a client cheap enough per request that the edge, not the client, is measured
    # (httpx costs several times more CPU per request than grpc.aio on this machine).
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=len(tokens))
    async with aiohttp.ClientSession(edge_url, connector=connector) as api:
        stop_at = time.perf_counter() + seconds

        async def client(token: str) -> None:
            nonlocal errors
            headers = {"authorization": f"Bearer {token}"}
            while time.perf_counter() < stop_at:
                body = {
                    "symbol": "BTCUSD",
                    "side": "ORDER_SIDE_BUY",
                    "type": "ORDER_TYPE_MARKET",
                    "volume": "0.01",
                    "clientOrderId": uuid.uuid4().hex,
                }
                started = time.perf_counter()
                async with api.post("/v1/orders", json=body, headers=headers) as reply:
                    await reply.read()
                    ok = reply.status == 200
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        await asyncio.gather(*[client(t) for t in tokens])
    return latencies, errors


async def _grpc_clients(target: str, tokens: list[str], seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    # A few connections, as a pool of clients would open (one HTTP/2 connection each is what
    # a real fleet of 64 clients would be; 8 keeps the client process's own cost down).
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(8)
    ]
    stubs = [trading_pb2_grpc.TradingServiceStub(c) for c in channels]
    stop_at = time.perf_counter() + seconds

    async def client(n: int, token: str) -> None:
        nonlocal errors
        stub = stubs[n % len(stubs)]
        metadata = (("authorization", f"Bearer {token}"),)
        while time.perf_counter() < stop_at:
            request = trading_pb2.PlaceOrderRequest(
                symbol="BTCUSD",
                side=trading_pb2.ORDER_SIDE_BUY,
                type=trading_pb2.ORDER_TYPE_MARKET,
                volume="0.01",
                client_order_id=uuid.uuid4().hex,
            )
            started = time.perf_counter()
            try:
                await stub.PlaceOrder(request, metadata=metadata, timeout=30)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*[client(n, t) for n, t in enumerate(tokens)])
    for channel in channels:
        await channel.close()
    return latencies, errors


def _worker(mode: str, target: str, tokens: list[str], seconds: float, out: Any) -> None:
    if mode == "rest":
        result = asyncio.run(_rest_clients(target, tokens, seconds))
    else:
        result = asyncio.run(_grpc_clients(target, tokens, seconds))
    out.put(result)


def run_mode(
    mode: str, target: str, tokens: list[str], seconds: float, workers: int
) -> dict[str, Any]:
    queue: Any = multiprocessing.get_context("spawn").Queue()
    shares = [tokens[n::workers] for n in range(workers)]
    processes = [
        multiprocessing.get_context("spawn").Process(
            target=_worker, args=(mode, target, share, seconds, queue)
        )
        for share in shares
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    return {
        "latencies": [lat for lats, _ in results for lat in lats],
        "errors": sum(err for _, err in results),
    }


def _combine(parts: list[dict[str, Any]], seconds: float) -> dict[str, float]:
    latencies = sorted(lat for part in parts for lat in part["latencies"])
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [0.0] * 99
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "errors": sum(p["errors"] for p in parts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="per mode, in total")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="exness-bench-edge-"))
    process, state = start_platform(root / "data")
    try:
        edge_url = f"http://{state['edge']}"
        asyncio.run(_wait_for_quote(edge_url))
        # Warm-up (connections, the engine's first accounts), on users of its own.
        warm = asyncio.run(make_users(edge_url, args.clients))
        run_mode("grpc", state["trading"], warm, 2, args.workers)
        run_mode("rest", edge_url, warm, 2, args.workers)
        modes = [
            ("REST/JSON via Envoy", "rest", edge_url),
            ("direct gRPC (engine)", "grpc", state["trading"]),
            ("gRPC via Envoy", "grpc", state["edge"]),
        ]
        # Accounts of their own per mode; rounds interleave the modes so that drift on a
        # shared, noisy machine (other load, a growing book) falls on all of them alike.
        users = {label: asyncio.run(make_users(edge_url, args.clients)) for label, _, _ in modes}
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in modes}
        for _ in range(args.rounds):
            for label, mode, target in modes:
                runs[label].append(
                    run_mode(mode, target, users[label], args.seconds / args.rounds, args.workers)
                )
        results = {label: _combine(parts, args.seconds) for label, parts in runs.items()}
    finally:
        stop_up(process)

    print(
        f"PlaceOrder (market, durable), {args.clients} concurrent clients, "
        f"{args.seconds:g} s per mode in {args.rounds} interleaved rounds, "
        f"{args.workers} client processes"
    )
    for label, result in results.items():
        print(
            f"  {label:<22} {result['rps']:8,.0f} orders/s   p50 {result['p50_ms']:6.1f} ms   "
            f"p99 {result['p99_ms']:6.1f} ms   errors {result['errors']:.0f}"
        )
    direct = results["direct gRPC (engine)"]["rps"]
    ratio = results["REST/JSON via Envoy"]["rps"] / direct if direct else 0.0
    proxied = results["gRPC via Envoy"]["rps"] / direct if direct else 0.0
    print(
        f"  REST via Envoy / direct gRPC = {ratio:.2f}  (target >= {TARGET})   "
        f"gRPC via Envoy / direct = {proxied:.2f}"
    )


if __name__ == "__main__":
    main()

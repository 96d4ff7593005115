"""Durable PlaceOrder through Envoy (native gRPC) at 128 concurrent clients spread over users
of every shard, on `exness up --shards 1` and then `--shards 2`, on this machine, in one run.

Prints orders/s, p50/p99, and the CPU seconds each process spent per 1,000 orders (from
/proc/PID/stat: every engine, Envoy, and PostgreSQL with all its backends), less what it spends
with no orders at all (quotes keep arriving: the engine applies every tick), measured for
--idle seconds just before the load. Target: per-order
engine CPU with 2 shards within 10% of 1 shard (shards do not slow each other). Then a
projection for 8 shards on 8 machines, from the per-order CPU of each component (how many
orders one core of it can carry), saying which part would bound it.

    .venv/bin/python -m bench.place_order_shards [--seconds 20] [--clients 128] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.place_order_edge import _combine, _wait_for_quote, make_users, run_mode
from tests.support.processes import start_up, stop_up, up_env, wait_for_state

TARGET = 0.10  # engine CPU per order, 2 shards vs 1: at most 10% more
SHARD_ID_SHIFT = 48
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _family(root: int) -> list[int]:
    """`root` and its direct children (PostgreSQL's backends)."""
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if parent == root:
                pids.append(int(entry.name))
    return pids


@dataclass
class Sample:
    cpu: dict[str, float]  # component -> CPU seconds so far
    orders: dict[int, int]  # shard -> orders stored so far


def _sample(state: dict[str, Any], data_dir: Path) -> Sample:
    cpu: dict[str, float] = {}
    for name, pid in state["children"].items():
        if name.startswith("Trading"):
            cpu[name] = _cpu_s(pid)
    cpu["Envoy"] = _cpu_s(state["edge_pid"])
    postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    cpu["PostgreSQL (all backends)"] = sum(_cpu_s(p) for p in _family(postmaster))
    with psycopg.connect(state["database_url"]) as conn:
        rows = conn.execute(
            "SELECT order_id >> %s, count(*) FROM trading_orders GROUP BY 1", (SHARD_ID_SHIFT,)
        ).fetchall()
    return Sample(cpu, {int(s): int(n) for s, n in rows})


def _engine_of(shard: int, shards: int) -> str:
    return "Trading" if shards == 1 else f"Trading shard {shard}"


def measure(shards: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    data_dir = root / f"shards-{shards}"
    env = up_env(
        EXNESS_EDGE_AUTH_RATE_BURST="100000",
        EXNESS_LOG_LEVEL="WARNING",
        EXNESS_EDGE_ACCESS_LOG="/dev/null",
    )
    output = root / f"up-{shards}.out"
    process = start_up(data_dir, output, env, "--shards", str(shards))
    try:
        state = wait_for_state(data_dir, process, output, timeout_s=180)
        edge_url = f"http://{state['edge']}"
        asyncio.run(_wait_for_quote(edge_url))
        warm = asyncio.run(make_users(edge_url, 16))
        run_mode("grpc", state["edge"], warm, 2, args.workers)
        users = asyncio.run(make_users(edge_url, args.clients))
        idle_from = _sample(state, data_dir)
        time.sleep(args.idle)
        before = _sample(state, data_dir)
        idle_rate = {k: (before.cpu[k] - idle_from.cpu[k]) / args.idle for k in before.cpu}
        started = time.monotonic()
        parts = [
            run_mode("grpc", state["edge"], users, args.seconds / args.rounds, args.workers)
            for _ in range(args.rounds)
        ]
        after = _sample(state, data_dir)
        loaded_s = time.monotonic() - started
    finally:
        stop_up(process)
    orders = {s: after.orders.get(s, 0) - before.orders.get(s, 0) for s in range(shards)}
    total = sum(orders.values())
    per_k: dict[str, float] = {}
    for name in after.cpu:
        spent = after.cpu[name] - before.cpu[name] - idle_rate[name] * loaded_s
        if name.startswith("Trading"):
            shard = 0 if shards == 1 else int(name.rsplit(" ", 1)[1])
            per_k[name] = spent / orders[shard] * 1000 if orders[shard] else float("nan")
        else:
            per_k[name] = spent / total * 1000 if total else float("nan")
    return {"result": _combine(parts, args.seconds), "orders": orders, "cpu_per_k": per_k}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="per shape, in total")
    parser.add_argument("--clients", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of the idle baseline")
    parser.add_argument("--machines", type=int, default=8, help="for the projection")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="exness-bench-shards-"))
    runs = {shards: measure(shards, args, root) for shards in (1, 2)}

    print(
        f"PlaceOrder (market, durable) through Envoy (gRPC), {args.clients} clients over users "
        f"of every shard, {args.seconds:g} s per shape, {args.workers} client processes, "
        f"{os.cpu_count()} cores shared by everything"
    )
    for shards, run in runs.items():
        r = run["result"]
        print(
            f"  {shards} shard(s): {r['rps']:8,.0f} orders/s   p50 {r['p50_ms']:6.1f} ms   "
            f"p99 {r['p99_ms']:6.1f} ms   errors {r['errors']:.0f}   orders by shard "
            f"{run['orders']}"
        )
        for name, cpu in run["cpu_per_k"].items():
            print(f"      {name:<28} {cpu:6.3f} CPU s per 1,000 orders")
    one = runs[1]["cpu_per_k"]["Trading"]
    two = [v for k, v in runs[2]["cpu_per_k"].items() if k.startswith("Trading")]
    worst = max(two)
    print(
        f"  engine CPU per order, 2 shards / 1 shard = {worst / one:.2f} (worst shard; "
        f"target <= {1 + TARGET:.2f})   orders/s 2 shards / 1 shard = "
        f"{runs[2]['result']['rps'] / runs[1]['result']['rps']:.2f}"
    )
    # Projection: each engine on a machine of its own has one core for its event loop, so a
    # shard carries at most 1000 / (its CPU s per 1,000 orders) orders/s; shards add up
    # (the 2-shard run shows whether they slow each other). Envoy scales by adding replicas.
    # One PostgreSQL for all shards carries 1000 / (its CPU s per 1,000) per core it has.
    engine_cap = 1000 / worst
    pg_per_k = runs[2]["cpu_per_k"]["PostgreSQL (all backends)"]
    envoy_per_k = runs[2]["cpu_per_k"]["Envoy"]
    machines = args.machines
    print(
        f"  projection, {machines} shards on {machines} machines: engines "
        f"{machines * engine_cap:,.0f} orders/s ({engine_cap:,.0f} per shard-core); "
        f"one PostgreSQL needs {machines * engine_cap * pg_per_k / 1000:.1f} cores for that "
        f"({1000 / pg_per_k:,.0f} orders/s per core); Envoy "
        f"{machines * engine_cap * envoy_per_k / 1000:.1f} cores ({1000 / envoy_per_k:,.0f} "
        f"orders/s per core)"
    )


if __name__ == "__main__":
    main()

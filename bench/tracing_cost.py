"""What tracing costs PlaceOrder: bench/place_order_grpc.py run alternately with tracing off
(OTEL_SDK_DISABLED=true) and on (EXNESS_TRACE_RATIO of the calls traced, all by default: server
span, validation, engine, group commit, relay publish, written to the JSON-lines span file),
several rounds.

Each run measures the engine against a bare grpc.aio echo server in the same run, so the
engine/echo ratio holds on a noisy machine; the cost is compared on that ratio (and on raw
orders/s). Target: tracing on costs at most 10% of the orders/s.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_LOSS = 0.10
_RATE = re.compile(r"PlaceOrder \(durable\):\s+([\d,]+) orders/s")
_RATIO = re.compile(r"ratio engine/echo: ([\d.]+)")


def one_run(tracing: bool, clients: int, seconds: float, trace_ratio: str) -> tuple[float, float]:
    """(orders/s, engine/echo ratio) of one run of place_order_grpc."""
    env = {
        **os.environ,
        "OTEL_SDK_DISABLED": "false" if tracing else "true",
        "EXNESS_TRACE_RATIO": trace_ratio,
    }
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.place_order_grpc"),
            *("--clients", str(clients), "--seconds", str(seconds)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rate, ratio = _RATE.search(done.stdout), _RATIO.search(done.stdout)
    if done.returncode != 0 or rate is None or ratio is None:
        raise SystemExit(f"place_order_grpc failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return float(rate.group(1).replace(",", "")), float(ratio.group(1))


def describe(values: list[float]) -> str:
    spread = max(values) - min(values)
    return f"best {max(values):,.2f}  median {statistics.median(values):,.2f}  spread {spread:,.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--ratio", default="1", help="EXNESS_TRACE_RATIO of the traced runs (default 1: all)"
    )
    args = parser.parse_args()
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for tracing in (False, True):  # alternated, so drifting load hits both alike
            rate, ratio = one_run(tracing, args.clients, args.seconds, args.ratio)
            results[tracing].append((rate, ratio))
            label = "on " if tracing else "off"
            print(f"round {round_ + 1} tracing {label}: {rate:,.0f} orders/s, engine/echo {ratio}")
    for tracing in (False, True):
        rates = [r for r, _ in results[tracing]]
        ratios = [q for _, q in results[tracing]]
        label = "on " if tracing else "off"
        print(f"tracing {label} orders/s: {describe(rates)}")
        print(f"tracing {label} engine/echo: {describe(ratios)}")
    best_off = max(q for _, q in results[False])
    best_on = max(q for _, q in results[True])
    loss = 1 - best_on / best_off
    print(
        f"cost of tracing (best engine/echo ratio): {loss:.1%} fewer orders/s "
        f"(target <= {TARGET_LOSS:.0%}: {'MET' if loss <= TARGET_LOSS else 'NOT MET'})"
    )


if __name__ == "__main__":
    main()

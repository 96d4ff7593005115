"""What tracing costs PlaceOrder: bench/place_order_grpc.py run alternately with tracing off
(OTEL_SDK_DISABLED=true) and on (EXNESS_TRACE_RATIO of the calls traced, all by default: server
span, validation, engine, group commit, relay publish, written to the JSON-lines span file),
several rounds.

The engine is CPU-bound, so its CPU time per order decides its orders/s at full load, and unlike
orders/s it hardly depends on what else the machine runs: the cost is measured on it (1 - CPU
per order off / CPU per order on = the share of orders/s lost). orders/s and the engine/echo
ratio of each run are printed too. Target: tracing costs at most 10% of the orders/s.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_LOSS = 0.10
_RATE = re.compile(r"PlaceOrder \(durable\):\s+([\d,]+) orders/s")
_RATIO = re.compile(r"ratio engine/echo: ([\d.]+)")
_CPU = re.compile(r"engine CPU per order: ([\d.]+) ms")


@dataclass(frozen=True)
class Run:
    orders_per_s: float
    engine_echo_ratio: float
    cpu_ms_per_order: float


def one_run(tracing: bool, clients: int, seconds: float, trace_ratio: str) -> Run:
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
    found = [pattern.search(done.stdout) for pattern in (_RATE, _RATIO, _CPU)]
    if done.returncode != 0 or not all(found):
        raise SystemExit(f"place_order_grpc failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    rate, ratio, cpu = (float(m.group(1).replace(",", "")) for m in found if m)
    return Run(rate, ratio, cpu)


def describe(values: list[float]) -> str:
    spread = max(values) - min(values)
    return f"best {max(values):,.3f}  median {statistics.median(values):,.3f}  spread {spread:,.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--ratio", default="1", help="EXNESS_TRACE_RATIO of the traced runs (default 1: all)"
    )
    args = parser.parse_args()
    runs: dict[bool, list[Run]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for tracing in (False, True):  # alternated, so drifting load hits both alike
            run = one_run(tracing, args.clients, args.seconds, args.ratio)
            runs[tracing].append(run)
            print(
                f"round {round_ + 1} tracing {'on ' if tracing else 'off'}: "
                f"{run.orders_per_s:,.0f} orders/s, engine/echo {run.engine_echo_ratio}, "
                f"engine CPU {run.cpu_ms_per_order:.3f} ms/order"
            )
    for tracing in (False, True):
        label = "on " if tracing else "off"
        print(
            f"tracing {label} orders/s:         {describe([r.orders_per_s for r in runs[tracing]])}"
        )
        print(
            f"tracing {label} engine/echo:      {describe([r.engine_echo_ratio for r in runs[tracing]])}"
        )
        # For CPU per order the best run is the lowest.
        cpu = [r.cpu_ms_per_order for r in runs[tracing]]
        print(
            f"tracing {label} CPU ms per order: lowest {min(cpu):.3f}  median "
            f"{statistics.median(cpu):.3f}  spread {max(cpu) - min(cpu):.3f}"
        )
    off = min(r.cpu_ms_per_order for r in runs[False])
    on = min(r.cpu_ms_per_order for r in runs[True])
    loss = 1 - off / on
    print(
        f"cost of tracing (ratio {args.ratio}; lowest CPU per order, off vs on): {loss:.1%} "
        f"fewer orders/s at full load (target <= {TARGET_LOSS:.0%}: "
        f"{'MET' if loss <= TARGET_LOSS else 'NOT MET'})"
    )


if __name__ == "__main__":
    main()

"""`exness probe HOST:PORT [SERVICE]`: exit 0 when the gRPC health check answers SERVING
(container health checks, scripts)."""

from __future__ import annotations

import argparse

from kit.rpc.probes import grpc_serving


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", help="host:port of a gRPC server")
    parser.add_argument(
        "service", nargs="?", default="", help="service name to check (default: the whole server)"
    )


def run(args: argparse.Namespace) -> int:
    ok = grpc_serving(args.address, args.service, timeout_s=2.0)
    print("SERVING" if ok else "NOT SERVING")
    return 0 if ok else 1

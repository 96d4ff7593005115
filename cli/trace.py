"""`exness trace ID`: one trace from the embedded default's span files (<data dir>/traces/),
printed as a waterfall: every span of every process (Envoy, the services, the relay), nested
under its parent, placed on a common time axis. ID is a trace id, or a request id (Envoy's
x-request-id, which every server span records). Without ID: the latest traces.

`exness trace-sink` is the OTLP receiver `exness up` runs for Envoy's spans (kit.obs.trace_sink).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kit.obs.tracing import TRACES_DIR
from kit.settings import Settings

console = Console(highlight=False)
BAR_WIDTH = 40
# Attributes that name the request: a request id given instead of a trace id matches these.
REQUEST_ID_ATTRIBUTES = ("exness.request_id", "guid:x-request-id", "http.request_id")


@dataclass
class Span:
    record: dict[str, Any]
    children: list[Span] = field(default_factory=list)

    @property
    def start(self) -> int:
        return int(self.record["startTimeUnixNano"])

    @property
    def end(self) -> int:
        return int(self.record["endTimeUnixNano"] or self.record["startTimeUnixNano"])


def span_records(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(errors="replace") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line still being written
                if isinstance(record, dict) and "traceId" in record:
                    yield record


def find_trace(records: Iterable[dict[str, Any]], wanted: str) -> list[dict[str, Any]]:
    """The spans of trace `wanted` (a trace id, or a request id one of its spans records)."""
    wanted = wanted.strip().lower()
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    named: set[str] = set()
    for record in records:
        by_trace[record["traceId"]].append(record)
        attributes = record.get("attributes") or {}
        if any(str(attributes.get(a, "")).lower() == wanted for a in REQUEST_ID_ATTRIBUTES):
            named.add(record["traceId"])
    if wanted in by_trace:
        return by_trace[wanted]
    return [r for trace_id in sorted(named) for r in by_trace[trace_id]]


def build_tree(records: list[dict[str, Any]]) -> list[Span]:
    """Roots (spans whose parent is not in the trace, e.g. the caller's) with their children,
    each level in start order."""
    spans = {r["spanId"]: Span(r) for r in records}
    roots: list[Span] = []
    for span in spans.values():
        parent = spans.get(span.record.get("parentSpanId") or "")
        (parent.children if parent is not None else roots).append(span)
    for span in spans.values():
        span.children.sort(key=lambda s: s.start)
    return sorted(roots, key=lambda s: s.start)


def _walk(spans: list[Span], depth: int = 0) -> Iterator[tuple[int, Span]]:
    for span in spans:
        yield depth, span
        yield from _walk(span.children, depth + 1)


def _bar(start: int, end: int, origin: int, total: int) -> Text:
    left = int((start - origin) / total * BAR_WIDTH)
    width = max(1, round((end - start) / total * BAR_WIDTH))
    return Text(" " * left + "█" * min(width, BAR_WIDTH - left), style="cyan")


def waterfall(records: list[dict[str, Any]]) -> Table:
    roots = build_tree(records)
    origin = min(s.start for _, s in _walk(roots))
    total = max(max(s.end for _, s in _walk(roots)) - origin, 1)
    table = Table(title=f"trace {records[0]['traceId']}", show_lines=False)
    for column in ("service", "span", "start ms", "ms", "status"):
        table.add_column(column, justify="right" if "ms" in column else "left")
    table.add_column("", no_wrap=True)
    for depth, span in _walk(roots):
        record = span.record
        status = record.get("status", "UNSET")
        table.add_row(
            record.get("service", ""),
            "  " * depth + record["name"],
            f"{(span.start - origin) / 1e6:.2f}",
            f"{(span.end - span.start) / 1e6:.2f}",
            Text(status, style="red" if status == "ERROR" else ""),
            _bar(span.start, span.end, origin, total),
        )
    return table


def latest(records: Iterable[dict[str, Any]], limit: int) -> Table:
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        traces[record["traceId"]].append(record)
    newest = sorted(
        traces.items(), key=lambda kv: min(r["startTimeUnixNano"] for r in kv[1]), reverse=True
    )[:limit]
    table = Table(title="latest traces")
    for column in ("trace id", "first span", "spans", "services", "ms"):
        table.add_column(column)
    for trace_id, spans in newest:
        first = min(spans, key=lambda r: r["startTimeUnixNano"])
        end = max(int(r["endTimeUnixNano"] or 0) for r in spans)
        table.add_row(
            trace_id,
            first["name"],
            str(len(spans)),
            ", ".join(sorted({r.get("service", "") for r in spans})),
            f"{(end - int(first['startTimeUnixNano'])) / 1e6:.1f}",
        )
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    if parser.get_default("command") == "trace-sink":
        parser.add_argument("--port", type=int, required=True, help="OTLP/gRPC port to serve")
        return
    parser.add_argument("id", nargs="?", help="a trace id or a request id (default: list)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $EXNESS_DATA_DIR")
    parser.add_argument("--limit", type=int, default=20, help="traces listed without ID")
    parser.add_argument("--json", action="store_true", help="print the spans as JSON lines")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.command == "trace-sink":
        return _serve_sink(settings, args.port)
    directory = (args.data_dir or settings.data_dir) / TRACES_DIR
    if not directory.is_dir():
        console.print(f"no spans in {directory} (is tracing on? see docs/observability.md)")
        return 1
    if not args.id:
        console.print(latest(span_records(directory), args.limit))
        return 0
    records = find_trace(span_records(directory), args.id)
    if not records:
        console.print(f"no trace or request {args.id} in {directory}")
        return 1
    if args.json:
        for record in sorted(records, key=lambda r: r["startTimeUnixNano"]):
            print(json.dumps(record))
    else:
        console.print(waterfall(records))
    return 0


def _serve_sink(settings: Settings, port: int) -> int:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    from kit.logs import setup_logging
    from kit.obs.trace_sink import SERVICE_NAME, TraceSink
    from kit.rpc.server import GrpcServer, ServiceSpec
    from kit.rpc.server import run as run_server

    setup_logging("trace-sink", settings.log_level, settings.log_format)
    sink = TraceSink(settings.data_dir / TRACES_DIR)
    server = GrpcServer(
        services=[
            ServiceSpec(
                SERVICE_NAME,
                lambda s: trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, s),  # type: ignore[no-untyped-call]
            )
        ],
        host="127.0.0.1",  # only this machine's Envoy sends here
        port=port,
        grace_s=2.0,
    )
    run_server(server.serve_until_signalled)
    return 0

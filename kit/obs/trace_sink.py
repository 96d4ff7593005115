"""An OTLP/gRPC trace receiver that writes what it receives into the embedded default's span
files (the same JSON lines as kit.obs.span_file), so Envoy's spans, which Envoy can only send
over OTLP, land beside the services' and `exness trace ID` shows the whole request.

docker-compose has a real tracing backend instead; this is for one machine only.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1 import trace_pb2

from kit.obs.span_file import append_lines

SERVICE_NAME = "opentelemetry.proto.collector.trace.v1.TraceService"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def _kind(span: trace_pb2.Span) -> str:
    return trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_")


def _status(span: trace_pb2.Span) -> str:
    return trace_pb2.Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_")


def span_records(request: trace_service_pb2.ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """The request's spans in the span-file format, with the service that sent each."""
    records = []
    for resource_spans in request.resource_spans:
        attributes = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = str(attributes.get("service.name", "unknown"))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                records.append(
                    {
                        "traceId": span.trace_id.hex(),
                        "spanId": span.span_id.hex(),
                        "parentSpanId": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": _kind(span),
                        "service": service,
                        "startTimeUnixNano": span.start_time_unix_nano,
                        "endTimeUnixNano": span.end_time_unix_nano,
                        "status": _status(span),
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "links": [
                            {"traceId": link.trace_id.hex(), "spanId": link.span_id.hex()}
                            for link in span.links
                        ],
                    }
                )
    return records


class TraceSink(trace_service_pb2_grpc.TraceServiceServicer):
    """Each sending service gets its own file: traces/<service.name>.jsonl."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self.received = 0

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        by_service: dict[str, list[str]] = defaultdict(list)
        for record in span_records(request):
            by_service[record["service"]].append(json.dumps(record, default=str) + "\n")
        for service, lines in by_service.items():
            append_lines(self.directory / f"{_safe(service)}.jsonl", "".join(lines), self._lock)
            self.received += len(lines)
        return trace_service_pb2.ExportTraceServiceResponse()


def _safe(name: str) -> str:
    """A service name as a file name (it comes from the sender)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "unknown"

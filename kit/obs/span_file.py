"""Spans as JSON lines in a file: the embedded default's trace sink.

One object per span with the OTLP field names that matter for reading a trace (ids in hex,
times in Unix nanoseconds). A whole batch goes out in one append, so several processes may
share a directory and a reader never sees half a batch of one writer.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


def span_record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    parent = span.parent
    assert context is not None
    return {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "parentSpanId": f"{parent.span_id:016x}" if parent is not None else "",
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get(SERVICE_NAME, ""),
        "startTimeUnixNano": span.start_time,
        "endTimeUnixNano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "links": [
            {"traceId": f"{link.context.trace_id:032x}", "spanId": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }


class JsonLinesSpanExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        text = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans)
        return append_lines(self.path, text, self._lock)

    def shutdown(self) -> None:
        pass


def append_lines(path: Path, text: str, lock: threading.Lock) -> SpanExportResult:
    """One write with O_APPEND: whole lines land together even with other writers."""
    try:
        with lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
    except OSError:
        return SpanExportResult.FAILURE
    return SpanExportResult.SUCCESS

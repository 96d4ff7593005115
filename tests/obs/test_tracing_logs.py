"""Log lines name the request they belong to; `exness trace` finds a trace by either id."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from cli.trace import build_tree, find_trace
from kit.logs import REQUEST_ID, JsonFormatter, RequestContextFilter


def _logger() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("test"))
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("tests.obs.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_log_lines_inside_a_request_carry_its_trace_and_request_id() -> None:
    logger, out = _logger()
    tracer = TracerProvider().get_tracer("test")  # a recording tracer, not the global one
    logger.info("before")
    with tracer.start_as_current_span("call") as span:
        token = REQUEST_ID.set("req-1")
        try:
            logger.info("inside")
        finally:
            REQUEST_ID.reset(token)
    logger.info("after")
    before, inside, after = (json.loads(line) for line in out.getvalue().splitlines())
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert inside["request_id"] == "req-1"
    for line in (before, after):
        assert "trace_id" not in line
        assert "request_id" not in line


def _span(trace: str, span: str, parent: str, start: int, **attributes: str) -> dict[str, object]:
    return {
        "traceId": trace,
        "spanId": span,
        "parentSpanId": parent,
        "name": span,
        "service": "s",
        "startTimeUnixNano": start,
        "endTimeUnixNano": start + 10,
        "attributes": attributes,
    }


def test_find_trace_by_trace_id_or_request_id_and_nest_it() -> None:
    records = [
        _span("a" * 32, "root", "caller", 1, **{"exness.request_id": "req-9"}),
        _span("a" * 32, "child2", "root", 5),
        _span("a" * 32, "child1", "root", 3),
        _span("b" * 32, "other", "", 2),
    ]
    assert {r["spanId"] for r in find_trace(records, "A" * 32)} == {"root", "child1", "child2"}
    assert find_trace(records, "req-9") == find_trace(records, "a" * 32)
    assert find_trace(records, "nothing") == []
    (root,) = build_tree(find_trace(records, "req-9"))
    assert root.record["spanId"] == "root"
    assert [c.record["spanId"] for c in root.children] == ["child1", "child2"]

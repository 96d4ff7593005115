"""Structured logging: one JSON object per line (or plain text for humans), on stderr.

Every line written while a request is handled names it: `trace_id` and `span_id` of the
current OpenTelemetry span, and `request_id` (the edge's x-request-id, or one made here).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

# The request being handled by this task (set by the tracing interceptor).
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")


class RequestContextFilter(logging.Filter):
    """Puts the current trace id, span id and request id on every record (empty outside a
    request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = f"{context.trace_id:032x}"
            record.span_id = f"{context.span_id:016x}"
        request_id = REQUEST_ID.get()
        if request_id:
            record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Anything passed as `extra=` becomes a field of its own.
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        trace_id = getattr(record, "trace_id", "")
        request_id = getattr(record, "request_id", "")
        if trace_id or request_id:
            text += f" [trace={trace_id or '-'} request={request_id or '-'}]"
        return text


def setup_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty about reconnects it handles itself.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))

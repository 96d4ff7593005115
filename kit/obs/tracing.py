"""OpenTelemetry tracing for one process: where its spans go.

- OTEL_SDK_DISABLED=true: no tracing at all (the OpenTelemetry API stays a no-op); request
  ids are still given and logged.
- OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set: spans go over
  OTLP/gRPC to that collector (docker-compose).
- otherwise (the embedded default): one JSON object per span, one per line, in
  `<data dir>/traces/<service>.jsonl`, which `exness trace ID` reads.

Sampling: a caller's decision is followed (Envoy samples EXNESS_EDGE_TRACE_PERCENT of the edge's
requests); a trace started here is kept with probability EXNESS_TRACE_RATIO (default 0.1: a
fully traced call costs the engine a visible share of its orders/s, see bench/tracing_cost.py).
Unsampled requests still get trace and request ids in their log lines. OTEL_TRACES_SAMPLER, when
set, replaces all this with the standard sampler it names.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from opentelemetry import propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kit.obs.span_file import JsonLinesSpanExporter
from kit.settings import env_float

log = logging.getLogger(__name__)

TRACES_DIR = "traces"
DEFAULT_TRACE_RATIO = 0.1


def traceparent(context: SpanContext) -> str:
    """A span context as a W3C traceparent value."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def tracing_enabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def otlp_endpoint() -> str:
    env = os.environ.get
    return env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "") or env("OTEL_EXPORTER_OTLP_ENDPOINT", "")


def trace_file(data_dir: Path, service: str) -> Path:
    return data_dir / TRACES_DIR / f"{service}.jsonl"


def _sampler() -> Sampler | None:
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        return None  # the SDK builds the standard one from the environment
    return ParentBased(TraceIdRatioBased(env_float("EXNESS_TRACE_RATIO", DEFAULT_TRACE_RATIO)))


def _exporter(service: str, data_dir: Path) -> SpanExporter:
    if otlp_endpoint():
        # Imported only when used: the gRPC exporter pulls in the OTLP protos.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, TLS from the OTEL_EXPORTER_OTLP_* vars
    return JsonLinesSpanExporter(trace_file(data_dir, service))


def setup_tracing(service: str, data_dir: Path) -> TracerProvider | None:
    """Installs this process's tracer provider (once, at start-up); None when tracing is off.
    W3C trace context is the only propagation format, on gRPC metadata and Kafka headers."""
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    if not tracing_enabled():
        return None
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service)})
    provider = TracerProvider(resource=resource, sampler=_sampler())
    provider.add_span_processor(BatchSpanProcessor(_exporter(service, data_dir)))
    trace.set_tracer_provider(provider)
    log.info(
        "tracing on",
        extra={"exporter": "otlp" if otlp_endpoint() else str(trace_file(data_dir, service))},
    )
    return provider

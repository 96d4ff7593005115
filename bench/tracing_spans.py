"""CPU cost of the spans one PlaceOrder makes, measured in-process (process CPU time, which
counts the exporter's thread too), so it holds on a loaded machine where end-to-end orders/s
swing several-fold between runs (see bench/tracing_cost.py for the end-to-end comparison).

Per order, as the services make them: the server span (with its attributes and the W3C
extraction of a caller's traceparent), validation, the engine command, the group commit (a
child of the server span, its traceparent written to the journal), the relay's publish span
(its context injected into the record headers); all exported as JSON lines to a file. Compared
with the same calls with tracing off (the OpenTelemetry API's no-op tracer) and with the default
sampling ratio (EXNESS_TRACE_RATIO=0.1). Prints microseconds of CPU per order; set against the
engine's CPU per order (bench/place_order_grpc.py prints it) they give the share of orders/s
tracing costs at full load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kit.data.kafka import trace_headers
from kit.obs.span_file import JsonLinesSpanExporter
from kit.obs.tracing import traceparent


def one_order(tracer: trace.Tracer) -> None:
    parent = propagate.extract({})  # Envoy-less: a trace starts at the service
    attributes = {
        "rpc.system": "grpc",
        "rpc.service": "exness.trading.v1.TradingService",
        "rpc.method": "PlaceOrder",
        "exness.request_id": "0123456789abcdef0123456789abcdef",
    }
    server = tracer.start_span(
        "exness.trading.v1.TradingService/PlaceOrder",
        context=parent,
        kind=SpanKind.SERVER,
        attributes=attributes,
    )
    with trace.use_span(server, end_on_exit=False):
        if trace.get_current_span().is_recording():
            with tracer.start_as_current_span("validate request"):
                pass
        if server.is_recording():
            with tracer.start_as_current_span("engine place_order") as engine:
                engine.set_attribute("exness.events", 2)
            context = server.get_span_context()
            commit = tracer.start_span(
                "group commit",
                context=trace.set_span_in_context(NonRecordingSpan(context)),
                attributes={"exness.commit.batch_size": 20},
            )
            journal = traceparent(commit.get_span_context())
            commit.end()
            publish = tracer.start_span(
                "trading.events publish",
                context=propagate.extract({"traceparent": journal}),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": "trading.events",
                    "messaging.operation.type": "send",
                    "exness.sequence": 1,
                },
            )
            trace_headers(trace.set_span_in_context(publish))
            publish.end()
    server.set_attribute("rpc.grpc.status_code", 0)
    server.end()


def cpu_us_per_order(tracer: trace.Tracer, provider: TracerProvider | None, orders: int) -> float:
    for _ in range(200):  # warm-up
        one_order(tracer)
    if provider is not None:
        provider.force_flush()
    started = time.process_time()
    for _ in range(orders):
        one_order(tracer)
    if provider is not None:
        provider.force_flush()  # the exporter's work counts
    return (time.process_time() - started) / orders * 1e6


def sdk_tracer(sampler: Sampler, path: Path) -> tuple[trace.Tracer, TracerProvider]:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(path)))
    return provider.get_tracer("bench"), provider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    propagate.set_global_textmap(TraceContextTextMapPropagator())  # as kit.obs.tracing sets it
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            "off (no-op API)": (trace.NoOpTracer(), None),
            "on, all traced": sdk_tracer(ParentBased(ALWAYS_ON), Path(tmp) / "all.jsonl"),
            "on, ratio 0.1": sdk_tracer(
                ParentBased(TraceIdRatioBased(0.1)), Path(tmp) / "ratio.jsonl"
            ),
        }
        results: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):  # interleaved, so drifting load hits all alike
            for name, (tracer, provider) in variants.items():
                results[name].append(cpu_us_per_order(tracer, provider, args.orders))
        for name, values in results.items():
            print(
                f"{name:<16} CPU per order: lowest {min(values):7.1f} us  "
                f"spread {max(values) - min(values):6.1f} us  ({args.rounds} rounds)"
            )
        off = min(results["off (no-op API)"])
        for name in ("on, all traced", "on, ratio 0.1"):
            print(f"tracing cost, {name}: {min(results[name]) - off:.1f} us of CPU per order")


if __name__ == "__main__":
    main()

"""Spans of the engine's commands and of the group commit that makes them durable.

A command runs inside the caller's server span; its events wait in the engine's outbox until
the committer's next transaction. So each command remembers, per event sequence, the span it
ran in; the committer starts one `group commit` span per traced request in its batch (a
child of that request's span), and the journal row keeps that span's `traceparent` for the
outbox relay, whose Kafka record then continues the same trace.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind

from kit.data.kafka import Headers, trace_headers
from kit.obs.tracing import traceparent
from services.trading.engine import Engine
from services.trading.model import Event

log = logging.getLogger(__name__)
tracer = trace.get_tracer("exness.trading")

# The engine's commands (each called by one TradingService or AdminService handler).
COMMANDS = (
    "deposit",
    "set_leverage",
    "place_order",
    "cancel_order",
    "modify_position",
    "close_position",
    "force_close",
)

F = TypeVar("F", bound=Callable[..., Any])


class CommitSpans:
    """The `group commit` spans of one batch: one per traced request in it."""

    def __init__(self, parents: dict[int, SpanContext], size: int) -> None:
        self._spans: dict[tuple[int, int], Span] = {}  # by the parent's (trace id, span id)
        self._traceparents: dict[int, str] = {}
        for sequence, parent in parents.items():
            key = (parent.trace_id, parent.span_id)
            span = self._spans.get(key)
            if span is None:
                span = self._spans[key] = tracer.start_span(
                    "group commit",
                    context=trace.set_span_in_context(NonRecordingSpan(parent)),
                    attributes={"exness.commit.batch_size": size},
                )
            self._traceparents[sequence] = traceparent(span.get_span_context())

    def traceparent_of(self, sequence: int) -> str | None:
        return self._traceparents.get(sequence)

    def end(self, error: BaseException | None = None) -> None:
        for span in self._spans.values():
            if error is not None:
                span.record_exception(error)
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
            span.end()


class CommandTraces:
    def __init__(self) -> None:
        self._parents: dict[int, SpanContext] = {}  # event sequence -> its request's span

    def instrument(self, engine: Engine) -> None:
        """Wraps the engine's commands on this instance with spans (the engine stays free of
        any tracing code)."""
        for name in COMMANDS:
            command = getattr(engine, name, None)
            if command is not None:
                setattr(engine, name, self._traced(engine, name, command))

    def _traced(self, engine: Engine, name: str, command: F) -> F:
        label = f"engine {name}"

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            current = trace.get_current_span()
            if not current.is_recording():  # an unsampled call: no span costs nothing
                return command(*args, **kwargs)
            parent = current.get_span_context()
            with tracer.start_as_current_span(label) as span:
                # The command's events are the sequences it takes (in order, synchronously).
                before = engine.last_sequence
                result = command(*args, **kwargs)
                span.set_attribute("exness.events", engine.last_sequence - before)
                for sequence in range(before + 1, engine.last_sequence + 1):
                    self._parents[sequence] = parent
                return result

        return run  # type: ignore[return-value]

    def start_commit(self, items: Sequence[object]) -> CommitSpans:
        """The spans for a batch just drained from the engine (taking its events' parents).
        Tracing never stops a commit: a failure here costs the batch its spans only."""
        parents: dict[int, SpanContext] = {}
        if self._parents:
            for item in items:
                if isinstance(item, Event):
                    parent = self._parents.pop(item.sequence, None)
                    if parent is not None and parent.is_valid:
                        parents[item.sequence] = parent
        try:
            return CommitSpans(parents, len(items))
        except Exception:
            log.exception("could not start the group commit spans")
            return CommitSpans({}, len(items))


class RelaySpans:
    """One producer span per traced commit span in a relayed batch (the events one command
    made share it); the records' headers carry that span's context to whoever consumes the
    topic."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._spans: list[Span] = []
        self._headers: dict[str, Headers] = {}  # by the commit span's traceparent

    def start(self, sequence: int, parent: str | None) -> Headers:
        if not parent:
            return []
        headers = self._headers.get(parent)
        if headers is not None:
            return headers
        span = tracer.start_span(
            f"{self.topic} publish",
            context=propagate.extract({"traceparent": parent}),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": self.topic,
                "messaging.operation.type": "send",
                "exness.sequence": sequence,
            },
        )
        self._spans.append(span)
        headers = self._headers[parent] = trace_headers(trace.set_span_in_context(span))
        return headers

    def end(self) -> None:
        for span in self._spans:
            span.end()
        self._spans.clear()
        self._headers.clear()

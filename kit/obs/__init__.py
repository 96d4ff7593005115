"""Observability shared by every process: tracing (OpenTelemetry) and request ids."""

"""Observability shared by every process: Prometheus metrics (the RPC interceptor, the
metrics endpoint, Kafka consumer positions), tracing (OpenTelemetry) and request ids."""

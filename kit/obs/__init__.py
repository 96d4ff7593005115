"""Observability shared by the services: Prometheus metrics (the RPC interceptor, the metrics
endpoint, Kafka consumer positions)."""

"""The Prometheus metrics endpoint of a service process, and the switch that turns metrics off.

Every process serves the default prometheus-client registry in the text format on its own
port (see docs/observability.md). EXNESS_METRICS=off leaves out the endpoint and the RPC interceptor,
so benchmarks can measure what metrics cost.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import disable_created_metrics, start_http_server

log = logging.getLogger(__name__)

_OFF = ("0", "off", "false", "no")

# The *_created series double what every counter exposes and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


def metrics_enabled() -> bool:
    return os.environ.get("EXNESS_METRICS", "on").strip().lower() not in _OFF


def serve_metrics(host: str, port: int) -> int | None:
    """Starts the /metrics endpoint (a daemon thread, off the event loop); returns the port,
    or None when metrics are off or the port is 0 (not wanted). A taken port is logged, not
    fatal: trading goes on without metrics rather than refusing to start."""
    if not metrics_enabled() or port == 0:
        return None
    try:
        server, _ = start_http_server(port, addr=host)
    except OSError as exc:
        log.error("metrics endpoint not started", extra={"port": port, "error": str(exc)})
        return None
    bound: int = server.server_port
    log.info("metrics endpoint", extra={"address": f"{host}:{bound}"})
    return bound

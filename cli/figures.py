"""Per-service figures for `exness status`, read from the Prometheus that `exness up` runs:
requests/s, p99 latency and server errors/s of the gRPC calls (health checks left out), and
the oldest quote MarketData holds."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from cli.devstack.prometheus_config import SERVER_ERROR_CODES

WINDOW = "1m"
_CALLS = 'grpc_service!="grpc.health.v1.Health"'
QUERIES = {
    "rps": f"sum by (job) (rate(grpc_server_handled_total{{{_CALLS}}}[{WINDOW}]))",
    "p99": "histogram_quantile(0.99, sum by (job, le) (rate(grpc_server_handling_seconds_bucket"
    f'{{{_CALLS},grpc_type="unary"}}[{WINDOW}])))',
    # "or ... * 0": a service with calls but no failed one has 0 errors/s, not none.
    "errors": "sum by (job) (rate(grpc_server_handled_total"
    f'{{{_CALLS},grpc_code=~"{SERVER_ERROR_CODES}"}}[{WINDOW}]))'
    f" or sum by (job) (rate(grpc_server_handled_total{{{_CALLS}}}[{WINDOW}])) * 0",
}
OLDEST_QUOTE = "topk(1, exness_quote_age_seconds)"


@dataclass(frozen=True)
class ServiceFigures:
    rps: float | None = None
    p99_s: float | None = None
    errors_per_s: float | None = None


@dataclass(frozen=True)
class Figures:
    services: dict[str, ServiceFigures]
    oldest_quote: tuple[str, float] | None  # symbol, age in seconds


def _query(base: str, promql: str, timeout_s: float) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=timeout_s) as reply:
        body = json.loads(reply.read())
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def _value(sample: dict[str, object]) -> float | None:
    value = float(sample["value"][1])  # type: ignore[index]
    return None if value != value else value  # NaN: no calls in the window


def read_figures(prometheus: str, timeout_s: float = 3.0) -> Figures | None:
    """None when Prometheus does not answer."""
    by_job: dict[str, dict[str, float | None]] = {}
    try:
        for name, promql in QUERIES.items():
            for sample in _query(prometheus, promql, timeout_s):
                job = str(sample["metric"].get("job", ""))  # type: ignore[attr-defined]
                by_job.setdefault(job, {})[name] = _value(sample)
        oldest = _query(prometheus, OLDEST_QUOTE, timeout_s)
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None
    services = {
        job: ServiceFigures(v.get("rps"), v.get("p99"), v.get("errors"))
        for job, v in by_job.items()
    }
    quote = None
    if oldest:
        age = _value(oldest[0])
        symbol = str(oldest[0]["metric"].get("symbol", ""))  # type: ignore[attr-defined]
        quote = (symbol, age) if age is not None else None
    return Figures(services, quote)

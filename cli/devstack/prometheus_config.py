"""Prometheus scrape configuration and alert rules for the platform.

`exness up` renders both into its data directory with the ports it chose; docker-compose uses
the copies in deploy/prometheus/, rendered with the compose addresses (`python -m
cli.devstack.prometheus_config deploy/prometheus`; a test keeps them in step with this module).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

RULES_FILE = "alerts.yml"
CONFIG_FILE = "prometheus.yml"

# gRPC codes that mean the server failed, not the caller (as in the grpc-ecosystem alerts).
SERVER_ERROR_CODES = "UNKNOWN|INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED|DATA_LOSS|UNIMPLEMENTED"


@dataclass(frozen=True)
class Target:
    job: str  # auth, market, trading, poller, envoy
    address: str  # host:port
    metrics_path: str = "/metrics"


@dataclass(frozen=True)
class AlertThresholds:
    max_quote_age_s: float = 10.0  # the engine refuses market orders on older quotes
    # How long a partition may not advance while its log grows; also the window outbox lag
    # must keep growing over.
    stall_window: str = "2m"
    p99_s: float = 0.5
    error_ratio: float = 0.05
    # How long a condition must hold before the alert fires.
    hold: str = "30s"


def render_config(
    targets: list[Target], scrape_interval_s: float = 5.0, rules_file: str = RULES_FILE
) -> dict[str, Any]:
    interval = f"{scrape_interval_s:g}s"
    jobs: dict[tuple[str, str], list[str]] = {}
    for target in targets:
        jobs.setdefault((target.job, target.metrics_path), []).append(target.address)
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [rules_file],
        "scrape_configs": [
            {"job_name": job, "metrics_path": path, "static_configs": [{"targets": addresses}]}
            for (job, path), addresses in jobs.items()
        ],
    }


def render_rules(t: AlertThresholds) -> dict[str, Any]:
    def alert(name: str, expr: str, summary: str, hold: str = t.hold) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": hold,
            "labels": {"severity": "page"},
            "annotations": {"summary": summary},
        }

    window = t.stall_window
    return {
        "groups": [
            {
                "name": "exness",
                "rules": [
                    alert(
                        "QuoteStale",
                        f"max by (symbol) (exness_quote_age_seconds) > {t.max_quote_age_s:g}",
                        "{{ $labels.symbol }}: the latest quote MarketData holds is "
                        "{{ $value | humanizeDuration }} old",
                    ),
                    alert(
                        "KafkaPartitionStalled",
                        f"(changes(exness_kafka_consumer_position[{window}]) == 0)"
                        " and on (topic, partition)"
                        f" (max by (topic, partition) (delta(exness_kafka_produced_log_end[{window}])) > 0)",
                        "{{ $labels.consumer }} has not advanced on {{ $labels.topic }}"
                        "[{{ $labels.partition }}] while its log grows",
                    ),
                    alert(
                        "OutboxLagGrowing",
                        # The value is the lag now; it has not been 0 over the window.
                        f"exness_outbox_lag > 0 and delta(exness_outbox_lag[{window}]) > 0"
                        f" and min_over_time(exness_outbox_lag[{window}]) > 0",
                        "shard {{ $labels.shard }}: {{ $value }} journal events not on "
                        "trading.events, and growing",
                    ),
                    alert(
                        "RpcErrorRate",
                        "sum by (job, grpc_service, grpc_method) (rate(grpc_server_handled_total"
                        f'{{grpc_code=~"{SERVER_ERROR_CODES}"}}[1m]))'
                        " / sum by (job, grpc_service, grpc_method)"
                        f" (rate(grpc_server_handled_total[1m])) > {t.error_ratio:g}",
                        "{{ $labels.grpc_method }}: {{ $value | humanizePercentage }} of calls fail",
                    ),
                    alert(
                        "RpcLatencyP99High",
                        "histogram_quantile(0.99, sum by (job, grpc_service, grpc_method, le)"
                        ' (rate(grpc_server_handling_seconds_bucket{grpc_type="unary"}[1m])))'
                        f" > {t.p99_s:g}",
                        "{{ $labels.grpc_method }}: p99 {{ $value | humanizeDuration }}",
                    ),
                    alert(
                        "TargetDown",
                        "up == 0",
                        "{{ $labels.job }} at {{ $labels.instance }} does not answer scrapes",
                    ),
                ],
            }
        ]
    }


def write(directory: Path, config: dict[str, Any], rules: dict[str, Any]) -> Path:
    """Writes both files; returns the config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    header = "# Rendered by cli/devstack/prometheus_config.py: edit that, not this file.\n"
    (directory / RULES_FILE).write_text(header + yaml.safe_dump(rules, sort_keys=False))
    path = directory / CONFIG_FILE
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path


# docker-compose.yml: the services by their compose names, metrics on the default ports.
COMPOSE_TARGETS = [
    Target("auth", "auth:9461"),
    Target("market", "market-0:9462"),
    Target("market", "market-1:9462"),
    Target("trading", "trading-0:9463"),
    Target("trading", "trading-1:9463"),
    Target("poller", "poller:9464"),
    Target("envoy", "envoy:9901", "/stats/prometheus"),
]


def render_compose(directory: Path) -> None:
    write(directory, render_config(COMPOSE_TARGETS, 15.0), render_rules(AlertThresholds()))


if __name__ == "__main__":
    render_compose(Path(sys.argv[1]))

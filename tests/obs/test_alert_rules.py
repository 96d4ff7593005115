"""The alert rules, evaluated by Prometheus' own rule tester (promtool test rules) on series
that show each failure and its healthy twin."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.devstack.prometheus_config import (
    RULES_FILE,
    AlertThresholds,
    render_compose,
    render_rules,
)

REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = AlertThresholds(max_quote_age_s=10, stall_window="2m", p99_s=0.5, hold="1m")


def _fired(name: str, labels: dict[str, str], summary: str, at: str = "6m") -> dict[str, Any]:
    """At `at`, `name` fires exactly once: for `labels` (so not for the healthy series)."""
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [
            {"exp_labels": {**labels, "severity": "page"}, "exp_annotations": {"summary": summary}}
        ],
    }


CASES: list[dict[str, Any]] = [
    {
        "interval": "15s",
        "input_series": [
            # A consumer stuck at offset 100 while producers append; another keeps up.
            {
                "series": 'exness_kafka_consumer_position{consumer="fanout",topic="q",partition="0"}',
                "values": "100+0x40",
            },
            {
                "series": 'exness_kafka_consumer_position{consumer="writer",topic="q",partition="0"}',
                "values": "100+10x40",
            },
            {
                "series": 'exness_kafka_produced_log_end{topic="q",partition="0"}',
                "values": "100+10x40",
            },
            # A partition with no new records: a still consumer there is fine.
            {
                "series": 'exness_kafka_consumer_position{consumer="fanout",topic="q",partition="1"}',
                "values": "7+0x40",
            },
            {
                "series": 'exness_kafka_produced_log_end{topic="q",partition="1"}',
                "values": "7+0x40",
            },
        ],
        "alert_rule_test": [
            _fired(
                "KafkaPartitionStalled",
                {"consumer": "fanout", "topic": "q", "partition": "0"},
                "fanout has not advanced on q[0] while its log grows",
            ),
        ],
    },
    {
        "interval": "15s",
        "input_series": [
            {"series": 'exness_outbox_lag{shard="0"}', "values": "0+5x40"},  # growing
            {"series": 'exness_outbox_lag{shard="1"}', "values": "3+0x40"},  # steady
        ],
        "alert_rule_test": [
            _fired(
                "OutboxLagGrowing",
                {"shard": "0"},
                "shard 0: 120 journal events not on trading.events, and growing",
            )
        ],
    },
    {
        "interval": "15s",
        "input_series": [
            {"series": 'exness_quote_age_seconds{symbol="ETHUSD"}', "values": "0+15x40"},
            {"series": 'exness_quote_age_seconds{symbol="BTCUSD"}', "values": "0.2+0x40"},
        ],
        "alert_rule_test": [
            _fired(
                "QuoteStale",
                {"symbol": "ETHUSD"},
                "ETHUSD: the latest quote MarketData holds is 6m 0s old",
            )
        ],
    },
    {
        "interval": "15s",
        "input_series": [
            # PlaceOrder: 1 in 5 calls INTERNAL; GetAccount: only caller errors.
            {
                "series": 'grpc_server_handled_total{job="trading",grpc_service="t",grpc_method="PlaceOrder",grpc_code="OK"}',
                "values": "0+40x40",
            },
            {
                "series": 'grpc_server_handled_total{job="trading",grpc_service="t",grpc_method="PlaceOrder",grpc_code="INTERNAL"}',
                "values": "0+10x40",
            },
            {
                "series": 'grpc_server_handled_total{job="trading",grpc_service="t",grpc_method="GetAccount",grpc_code="OK"}',
                "values": "0+40x40",
            },
            {
                "series": 'grpc_server_handled_total{job="trading",grpc_service="t",grpc_method="GetAccount",grpc_code="INVALID_ARGUMENT"}',
                "values": "0+40x40",
            },
        ],
        "alert_rule_test": [
            _fired(
                "RpcErrorRate",
                {"job": "trading", "grpc_service": "t", "grpc_method": "PlaceOrder"},
                "PlaceOrder: 20% of calls fail",
            ),
        ],
    },
    {
        "interval": "15s",
        "input_series": [
            # Slow: every call between 1 s and 2.5 s. Fast: every call under 5 ms.
            *[
                {
                    "series": f'grpc_server_handling_seconds_bucket{{job="trading",grpc_service="t",grpc_method="Slow",grpc_type="unary",le="{le}"}}',
                    "values": values,
                }
                for le, values in (
                    ("0.005", "0+0x40"),
                    ("1", "0+0x40"),
                    ("2.5", "0+10x40"),
                    ("+Inf", "0+10x40"),
                )
            ],
            *[
                {
                    "series": f'grpc_server_handling_seconds_bucket{{job="trading",grpc_service="t",grpc_method="Fast",grpc_type="unary",le="{le}"}}',
                    "values": "0+10x40",
                }
                for le in ("0.005", "1", "2.5", "+Inf")
            ],
        ],
        "alert_rule_test": [
            _fired(
                "RpcLatencyP99High",
                {"job": "trading", "grpc_service": "t", "grpc_method": "Slow"},
                "Slow: p99 2.485s",
            ),
        ],
    },
]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool comes with prometheus")
def test_each_alert_fires_on_its_failure_and_not_on_the_healthy_series(tmp_path: Path) -> None:
    (tmp_path / RULES_FILE).write_text(yaml.safe_dump(render_rules(THRESHOLDS)))
    tests = {"rule_files": [RULES_FILE], "evaluation_interval": "15s", "tests": CASES}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        ["promtool", "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_copies_are_rendered_from_the_code(tmp_path: Path) -> None:
    render_compose(tmp_path)
    for name in ("prometheus.yml", RULES_FILE):
        committed = REPO / "deploy" / "prometheus" / name
        assert committed.read_text() == (tmp_path / name).read_text(), (
            f"{committed} is stale: python -m cli.devstack.prometheus_config deploy/prometheus"
        )

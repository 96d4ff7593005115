"""Prometheus as a child of `exness up` (Debian's `prometheus` package): scrapes every service
and Envoy's admin endpoint, evaluates the platform's alert rules, keeps its data in the data
directory."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from cli.devstack.children import Child, StartError
from cli.devstack.prometheus_config import AlertThresholds, Target, render_config, render_rules
from cli.devstack.prometheus_config import write as write_config
from kit.rpc.probes import http_ok

READY_TIMEOUT_S = 30.0


def binary() -> str | None:
    return shutil.which("prometheus")


def start_prometheus(
    data_dir: Path,
    listen: str,
    targets: list[Target],
    thresholds: AlertThresholds,
    env: Mapping[str, str],
    scrape_interval_s: float = 5.0,
) -> Child:
    """Renders the config into data_dir/prometheus, starts Prometheus on `listen` (host:port)
    and waits until it is ready. Raises StartError when it is not installed or not ready."""
    program = binary()
    if program is None:
        raise StartError(
            "prometheus is not installed: run scripts/setup.sh (apt-get install prometheus)"
        )
    home = data_dir / "prometheus"
    config = write_config(home, render_config(targets, scrape_interval_s), render_rules(thresholds))
    child = Child(
        "Prometheus",
        ["prometheus"],
        env,
        data_dir / "logs" / "prometheus.log",
        argv=[
            program,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address={listen}",
            "--storage.tsdb.retention.time=2d",
        ],
    )
    child.start()
    child.wait_until(lambda: http_ok(f"http://{listen}/-/ready", timeout_s=1), READY_TIMEOUT_S)
    return child

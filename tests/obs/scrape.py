"""Reading Prometheus endpoints in tests: samples of a /metrics page, and Prometheus' HTTP API."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


def scrape(url: str) -> Samples:
    """(sample name, labels) -> value for every sample the endpoint serves."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def select(
    samples: Mapping[tuple[str, Labels], float], name: str, **labels: str
) -> dict[Labels, float]:
    """The samples called `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return {
        found: value
        for (sample, found), value in samples.items()
        if sample == name and wanted <= found
    }


def moved(
    before: Mapping[tuple[str, Labels], float],
    after: Mapping[tuple[str, Labels], float],
    name: str,
) -> dict[Labels, float]:
    """Labels -> increase of the `name` samples that changed between two scrapes."""
    deltas = {}
    for (sample, labels), value in after.items():
        if sample == name:
            delta = value - before.get((sample, labels), 0.0)
            if delta:
                deltas[labels] = delta
    return deltas


def prometheus_api(base: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}", timeout=5) as reply:
        body = json.loads(reply.read())
    assert body["status"] == "success", body
    return body["data"]

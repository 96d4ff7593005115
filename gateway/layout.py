"""The platform's shape in the edge config: one Trading cluster per engine shard, with routes
that pick it from the `x-shard` header (written by jwt_authn from the verified token's `shard`
claim), and one MarketData cluster with an endpoint per replica.

The template describes ONE trading cluster and its routes; they are the prototype that is
copied here for each shard, so every cluster and route setting stays written in one place.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

TRADING_PROTOTYPE = "trading"
MARKET_CLUSTER = "market"
SHARD_HEADER = "x-shard"


def shard_cluster(shard: int) -> str:
    return f"trading_shard_{shard}"


def _socket(host: str, port: int) -> dict[str, Any]:
    return {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}


def _clusters(doc: dict[str, Any]) -> list[dict[str, Any]]:
    clusters: list[dict[str, Any]] = doc["static_resources"]["clusters"]
    return clusters


def _connection_manager(doc: dict[str, Any]) -> dict[str, Any]:
    listener = doc["static_resources"]["listeners"][0]
    hcm: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


def shard_clusters(
    prototype: dict[str, Any], shards: Sequence[tuple[str, int]]
) -> list[dict[str, Any]]:
    """The prototype cluster once per shard, each with that shard's one endpoint."""
    made = []
    for shard, (host, port) in enumerate(shards):
        cluster = copy.deepcopy(prototype)
        cluster["name"] = shard_cluster(shard)
        cluster["load_assignment"] = {
            "cluster_name": shard_cluster(shard),
            "endpoints": [{"lb_endpoints": [_socket(host, port)]}],
        }
        made.append(cluster)
    return made


def shard_routes(route: dict[str, Any], shard_count: int) -> list[dict[str, Any]]:
    """A route to the trading prototype becomes one route per shard (matched on x-shard), then
    the original sent to shard 0. That last one matches while x-shard is not set yet (filters
    before jwt_authn look routes up too) and for a shard number no engine owns: shard 0
    refuses such a caller with WRONG_SHARD, as any engine refuses another shard's caller."""
    routes = []
    for shard in range(shard_count):
        copied = copy.deepcopy(route)
        headers = copied["match"].setdefault("headers", [])
        headers.append({"name": SHARD_HEADER, "string_match": {"exact": str(shard)}})
        copied["route"]["cluster"] = shard_cluster(shard)
        routes.append(copied)
    fallback = copy.deepcopy(route)
    fallback["route"]["cluster"] = shard_cluster(0)
    routes.append(fallback)
    return routes


def apply_layout(
    doc: dict[str, Any],
    trading_shards: Sequence[tuple[str, int]],
    market_replicas: Sequence[tuple[str, int]],
) -> None:
    """Rewrites a rendered config (parsed) in place for this many shards and replicas."""
    if not trading_shards or not market_replicas:
        raise ValueError("at least one trading shard and one MarketData replica")
    clusters = _clusters(doc)
    index = next(i for i, c in enumerate(clusters) if c["name"] == TRADING_PROTOTYPE)
    clusters[index : index + 1] = shard_clusters(clusters[index], trading_shards)
    market = next(c for c in clusters if c["name"] == MARKET_CLUSTER)
    market["load_assignment"]["endpoints"] = [
        {"lb_endpoints": [_socket(host, port) for host, port in market_replicas]}
    ]

    hcm = _connection_manager(doc)
    for vhost in hcm["route_config"]["virtual_hosts"]:
        routes: list[dict[str, Any]] = []
        for route in vhost["routes"]:
            if route.get("route", {}).get("cluster") == TRADING_PROTOTYPE:
                routes.extend(shard_routes(route, len(trading_shards)))
            else:
                routes.append(route)
        vhost["routes"] = routes
    for http_filter in hcm["http_filters"]:
        minimums = http_filter["typed_config"].get("cluster_min_healthy_percentages")
        if minimums and TRADING_PROTOTYPE in minimums:
            wanted = minimums.pop(TRADING_PROTOTYPE)
            for shard in range(len(trading_shards)):
                minimums[shard_cluster(shard)] = copy.deepcopy(wanted)

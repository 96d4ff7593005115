"""The edge config for a shape of shards and replicas: what gateway/layout.py makes of the
template, checked on the rendered config (and by the real Envoy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.devstack.shape import Shape, instances
from gateway.bundle import write_bundle
from gateway.config import EdgeConfig, Upstream, render
from gateway.process import validate

SHARD_COUNT = 3
TRADING_METHODS = ("PlaceOrder", "GetAccount", "StreamAccount")


def _config(tmp_path: Path) -> EdgeConfig:
    web = tmp_path / "web"
    web.mkdir(exist_ok=True)
    for name in ("index.html", "app.js", "app.css"):
        (web / name).write_text("x")
    return EdgeConfig(
        web_dir=web,
        trading_shards=tuple(Upstream(f"trading-{i}", 50053) for i in range(SHARD_COUNT)),
        market_replicas=(Upstream("market-0", 50052), Upstream("market-1", 50052)),
    )


def _loaded(tmp_path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(render(_config(tmp_path)))
    return loaded


def _hcm(doc: dict[str, Any]) -> dict[str, Any]:
    listener = doc["static_resources"]["listeners"][0]
    hcm: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


def _route_for(routes: list[dict[str, Any]], path: str, headers: dict[str, str]) -> dict[str, Any]:
    """Envoy's first match, for the path and exact/contains header matchers the config uses."""
    for route in routes:
        match = route["match"]
        if not (match.get("path") == path or path.startswith(match.get("prefix", "\0"))):
            continue
        wanted = match.get("headers", [])
        if all(
            (value := headers.get(h["name"])) is not None
            and (
                value == h["string_match"]["exact"]
                if "exact" in h["string_match"]
                else h["string_match"]["contains"] in value
            )
            for h in wanted
        ):
            return route
    raise AssertionError(f"no route for {path} {headers}")


def test_each_shard_claim_routes_to_its_own_cluster(tmp_path: Path) -> None:
    routes = _hcm(_loaded(tmp_path))["route_config"]["virtual_hosts"][0]["routes"]
    for method in TRADING_METHODS:
        path = f"/exness.trading.v1.TradingService/{method}"
        for shard in range(SHARD_COUNT):
            route = _route_for(routes, path, {"x-shard": str(shard)})
            assert route["route"]["cluster"] == f"trading_shard_{shard}", (method, shard)
        # Before jwt_authn has written x-shard, and for a shard no engine owns: shard 0, which
        # refuses another shard's caller with WRONG_SHARD.
        assert _route_for(routes, path, {})["route"]["cluster"] == "trading_shard_0"
        assert _route_for(routes, path, {"x-shard": "9"})["route"]["cluster"] == "trading_shard_0"
    # Streams keep their no-timeout setting on every shard.
    stream = _route_for(routes, "/exness.trading.v1.TradingService/StreamAccount", {"x-shard": "2"})
    assert stream["route"]["timeout"] == "0s"


def test_routes_are_looked_up_again_once_the_shard_header_exists(tmp_path: Path) -> None:
    filters = {f["name"]: f["typed_config"] for f in _hcm(_loaded(tmp_path))["http_filters"]}
    provider = filters["envoy.filters.http.jwt_authn"]["providers"]["exness"]
    assert {"header_name": "x-shard", "claim_name": "shard"} in provider["claim_to_headers"]
    assert provider["clear_route_cache"] is True
    health = filters["envoy.filters.http.health_check"]["cluster_min_healthy_percentages"]
    assert set(health) == {"auth", "market", *(f"trading_shard_{i}" for i in range(SHARD_COUNT))}


def test_one_cluster_per_shard_and_one_endpoint_per_market_replica(tmp_path: Path) -> None:
    clusters = {c["name"]: c for c in _loaded(tmp_path)["static_resources"]["clusters"]}
    assert "trading" not in clusters  # the prototype is replaced by the shards' clusters
    for shard in range(SHARD_COUNT):
        cluster = clusters[f"trading_shard_{shard}"]
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert endpoint["endpoint"]["address"]["socket_address"]["address"] == f"trading-{shard}"
        assert cluster["health_checks"][0]["grpc_health_check"]["service_name"] == (
            "exness.trading.v1.TradingService"
        )
    market = clusters["market"]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    hosts = [e["endpoint"]["address"]["socket_address"]["address"] for e in market]
    assert hosts == ["market-0", "market-1"]


def test_envoy_accepts_the_sharded_config(tmp_path: Path) -> None:
    checked = validate(write_bundle(_config(tmp_path), tmp_path / "edge"))
    assert checked.ok, checked.output


def test_exness_up_shape_gives_each_instance_its_port_and_shard() -> None:
    made = instances(
        Shape(shards=3, market_replicas=2), {"auth": 100, "market": 200, "trading": 300}
    )
    by_name = {i.name: i for i in made}
    assert set(by_name) == {
        "Auth",
        "MarketData 0",
        "MarketData 1",
        "Trading shard 0",
        "Trading shard 1",
        "Trading shard 2",
    }
    assert by_name["Trading shard 2"].port == 302
    assert by_name["Trading shard 2"].env["EXNESS_SHARD_ID"] == "2"
    assert by_name["Trading shard 2"].env["EXNESS_TRADING_PORT"] == "302"
    assert by_name["MarketData 1"].env == {"EXNESS_MARKET_PORT": "201"}
    # One instance keeps the plain name and log file.
    single = instances(Shape(), {"auth": 100, "market": 200, "trading": 300})
    assert [(i.name, i.log_name) for i in single] == [
        ("Auth", "auth.log"),
        ("MarketData", "market.log"),
        ("Trading", "trading.log"),
    ]
    with pytest.raises(ValueError, match="at least 1"):
        Shape(shards=0)

"""The edge config itself: the one template renders to configs Envoy accepts (for `exness up`
and for docker-compose), and its routing and JWT rules agree with the contracts and with the
access each service enforces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from exness.common.v1 import access_pb2
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from gateway.bundle import write_bundle
from gateway.config import DESCRIPTOR_PATH, EdgeConfig, Upstream, render
from gateway.process import validate
from kit.rpc.access import Access, access_of

CLUSTER_OF_PACKAGE = {
    "exness.auth.v1": "auth",
    "exness.market.v1": "market",
    # Calls of a token with no (or an unknown) shard; tests/scale/test_layout.py covers the
    # routes chosen by the shard claim.
    "exness.trading.v1": "trading_shard_0",
}


def _web(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    web.mkdir()
    for name in ("index.html", "app.js", "app.css"):
        (web / name).write_text("x")
    return web


def _methods() -> list[tuple[str, str, bool]]:
    """(package, /pkg.Service/Method, has an HTTP binding) for every RPC in the contracts."""
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_PATH.read_bytes())
    found = []
    for file in files.file:
        if not file.package.startswith("exness."):
            continue
        for service in file.service:
            for method in service.method:
                path = f"/{file.package}.{service.name}/{method.name}"
                found.append(
                    (file.package, path, method.options.HasExtension(annotations_pb2.http))
                )
    return found


def _rendered(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    config = EdgeConfig(web_dir=_web(tmp_path)).with_(**changes)
    loaded: dict[str, Any] = yaml.safe_load(render(config))
    return loaded


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    typed: dict[str, Any] = config["static_resources"]["listeners"][0]["filter_chains"][0][
        "filters"
    ][0]["typed_config"]
    return typed


def _first_route(routes: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """Envoy's first-match rule for the path-only matchers the template uses."""
    for route in routes:
        match = route["match"]
        if "headers" in match:
            continue  # the SSE routes need an Accept header; gRPC calls never send it
        if match.get("path") == path or path.startswith(match.get("prefix", "\0")):
            return route
    raise AssertionError(f"no route for {path}")


@pytest.mark.parametrize("listen_host", ["127.0.0.1", "0.0.0.0"])
def test_envoy_validates_the_rendered_config(tmp_path: Path, listen_host: str) -> None:
    config = EdgeConfig(
        web_dir=_web(tmp_path), listen_host=listen_host, cors_origins=("https://app.example.com",)
    )
    path = write_bundle(config, tmp_path / "edge")
    checked = validate(path)
    assert checked.ok, checked.output


def test_compose_shaped_config_validates(tmp_path: Path) -> None:
    """Host names instead of addresses (docker-compose's service names) validate too."""
    config = EdgeConfig(
        auth=Upstream("auth", 50051),
        market=Upstream("market", 50052),
        trading=Upstream("trading", 50053),
        listen_host="0.0.0.0",
        web_dir=_web(tmp_path),
    )
    checked = validate(write_bundle(config, tmp_path / "edge"))
    assert checked.ok, checked.output


def test_validation_catches_a_broken_config(tmp_path: Path) -> None:
    """The validation step is not a rubber stamp: a config pointing at a missing file fails."""
    config = EdgeConfig(web_dir=tmp_path / "missing")
    checked = validate(write_bundle(config, tmp_path / "edge"))
    assert not checked.ok
    assert "missing" in checked.output


def test_every_placeholder_is_filled(tmp_path: Path) -> None:
    text = render(EdgeConfig(web_dir=_web(tmp_path)))
    assert "${" not in text
    with pytest.raises(KeyError):
        render(EdgeConfig(), template="port: ${NOT_A_SETTING}")


def test_internal_rpcs_are_not_routable(tmp_path: Path) -> None:
    routes = _hcm(_rendered(tmp_path))["route_config"]["virtual_hosts"][0]["routes"]
    methods = _methods()
    assert any(not public for _, _, public in methods), "expected at least one internal RPC"
    for package, path, public in methods:
        route = _first_route(routes, path)
        if public:
            assert route.get("route", {}).get("cluster") == CLUSTER_OF_PACKAGE[package], path
        else:
            assert route.get("direct_response", {}).get("status") == 404, path


def _jwt_rules(config: dict[str, Any]) -> list[dict[str, Any]]:
    filters = {f["name"]: f["typed_config"] for f in _hcm(config)["http_filters"]}
    rules: list[dict[str, Any]] = filters["envoy.filters.http.jwt_authn"]["rules"]
    return rules


def _open_at_edge(rules: list[dict[str, Any]], path: str) -> bool:
    rule = next(
        r
        for r in rules
        if r["match"].get("path") == path or path.startswith(r["match"].get("prefix", "\0"))
    )
    return "requires" not in rule


def test_jwt_rules_match_what_each_service_enforces(tmp_path: Path) -> None:
    """Open at the edge exactly when the method's declared access, which the services'
    pipeline enforces, is PUBLIC."""
    # The services' modules register their descriptors in the default pool.
    import services.auth.servicer
    import services.market.servicer
    import services.trading.servicer  # noqa: F401

    rules = _jwt_rules(_rendered(tmp_path))
    for _, path, routable in _methods():
        if routable:
            assert _open_at_edge(rules, path) == (access_of(path) is Access.PUBLIC), path


def test_jwt_rules_are_generated_from_the_declared_access(tmp_path: Path) -> None:
    """Declaring GetMe PUBLIC in a descriptor set opens it at the edge; nothing else is kept."""
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_PATH.read_bytes())
    auth = next(f for f in files.file if f.package == "exness.auth.v1")
    get_me = next(m for m in auth.service[0].method if m.name == "GetMe")
    get_me.options.Extensions[access_pb2.access] = access_pb2.ACCESS_PUBLIC
    changed = tmp_path / "changed.binpb"
    changed.write_bytes(files.SerializeToString())
    path = "/exness.auth.v1.AuthService/GetMe"
    as_built, as_changed = tmp_path / "built", tmp_path / "changed"
    as_built.mkdir()
    as_changed.mkdir()
    assert not _open_at_edge(_jwt_rules(_rendered(as_built)), path)
    assert _open_at_edge(_jwt_rules(_rendered(as_changed, descriptor_path=changed)), path)


def test_filter_order(tmp_path: Path) -> None:
    """See docs/edge.md: JWT and rate limits after the transcoder, CORS and gRPC-Web
    before it, identity headers stripped first, the router last."""
    names = [
        f["name"].removeprefix("envoy.filters.http.")
        for f in _hcm(_rendered(tmp_path))["http_filters"]
    ]
    order = [
        "header_mutation",
        "cors",
        "grpc_web",
        "connect_grpc_bridge",
        "grpc_json_transcoder",
        "local_ratelimit",
        "jwt_authn",
        "router",
    ]
    positions = [names.index(name) for name in order]
    assert positions == sorted(positions), names
    assert names[-1] == "router"


def test_cors_origins_are_configurable(tmp_path: Path) -> None:
    config = _rendered(tmp_path, cors_origins=("https://app.example.com",), listen_port=8443)
    vhost = _hcm(config)["route_config"]["virtual_hosts"][0]
    policy = vhost["typed_per_filter_config"]["envoy.filters.http.cors"]
    origins = [m["exact"] for m in policy["allow_origin_string_match"]]
    assert origins == ["http://localhost:8443", "http://127.0.0.1:8443", "https://app.example.com"]
    for header in ("grpc-status", "grpc-message", "grpc-status-details-bin"):
        assert header in policy["expose_headers"]


def test_upstreams_are_http2_with_grpc_health_checks(tmp_path: Path) -> None:
    clusters = {c["name"]: c for c in _rendered(tmp_path)["static_resources"]["clusters"]}
    for name in ("auth", "market", "trading_shard_0"):
        cluster = clusters[name]
        options = cluster["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ]
        assert "http2_protocol_options" in options["explicit_http_config"]
        assert cluster["health_checks"][0]["grpc_health_check"]["service_name"].startswith(
            "exness."
        )


def test_up_serves_a_placeholder_when_the_web_bundle_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without web/dist and without Node tooling `exness up` still starts the edge, with a page
    that says how to build the terminal."""
    from cli.devstack import up

    monkeypatch.setattr(up, "WEB_DIST", tmp_path / "no-dist")
    monkeypatch.setattr("shutil.which", lambda name: None)
    web = up._web_dir(tmp_path)
    assert "npm run build:web" in (web / "index.html").read_text()
    config = EdgeConfig(web_dir=web)
    checked = validate(write_bundle(config, tmp_path / "edge"))
    assert checked.ok, checked.output


def test_keys_come_straight_from_auth_before_the_listener_opens(tmp_path: Path) -> None:
    """jwt_authn fetches Auth's JWKS from Auth's own HTTP port (never through this listener,
    which would have to be open first), and the listener waits for the keys."""
    config = _rendered(tmp_path, auth=Upstream("auth", 50051), auth_jwks_port=50050)
    filters = {f["name"]: f["typed_config"] for f in _hcm(config)["http_filters"]}
    remote = filters["envoy.filters.http.jwt_authn"]["providers"]["exness"]["remote_jwks"]
    assert remote["http_uri"]["uri"] == "http://auth:50050/.well-known/jwks.json"
    assert remote["async_fetch"]["fast_listener"] is False
    assert remote["retry_policy"]["num_retries"] > 0
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    jwks = clusters[remote["http_uri"]["cluster"]]
    endpoint = jwks["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "auth", "port_value": 50050}
    assert "typed_extension_protocol_options" not in jwks  # HTTP/1.1
    assert "health_checks" not in jwks  # tried at once, not after a first health check

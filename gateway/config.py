"""What the edge needs to know (where it listens, where the services are, what it serves) and
the one function that turns gateway/envoy.yaml.tmpl into a config Envoy can load."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from string import Template

import yaml
from google.protobuf import descriptor_pb2

from gateway.layout import apply_layout
from gateway.local_replies import mappers_yaml
from kit.assets import asset
from kit.rpc.access import Access, declared_methods
from kit.settings import Settings, env_int

HERE = Path(__file__).resolve().parent
TEMPLATE_PATH = HERE / "envoy.yaml.tmpl"
LUA_SOURCES = HERE / "lua"
DESCRIPTOR_PATH = asset("gen/descriptor/exness.binpb")
OPENAPI_PATH = asset("gen/openapi/exness.swagger.json")
DOCS_PAGE = HERE / "docs" / "index.html"
# Swagger UI's prebuilt bundle, from npm (swagger-ui-dist): the /docs page renders with it.
SWAGGER_UI_DIST = asset("node_modules/swagger-ui-dist")
WEB_DIST = asset("web/dist")


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int

    @classmethod
    def parse(cls, address: str) -> Upstream:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected host:port, got {address!r}")
        return cls(host, int(port))

    @classmethod
    def from_url(cls, url: str) -> Upstream:
        """An OTLP endpoint as the OpenTelemetry variables give it: http://host:port."""
        return cls.parse(url.split("://", 1)[-1].rstrip("/"))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class EdgeConfig:
    auth: Upstream = Upstream("127.0.0.1", 50051)
    # Auth's public keys over HTTP/1.1 (on Auth's host), fetched before the listener opens.
    auth_jwks_port: int = 50050
    market: Upstream = Upstream("127.0.0.1", 50052)
    trading: Upstream = Upstream("127.0.0.1", 50053)
    # Engine shards (position = shard id) and MarketData replicas; empty: just `trading` /
    # `market` above.
    trading_shards: tuple[Upstream, ...] = ()
    market_replicas: tuple[Upstream, ...] = ()
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 9901
    descriptor_path: Path = DESCRIPTOR_PATH
    web_dir: Path = WEB_DIST
    # Browser origins allowed to call the API cross-origin; the edge's own origin is always
    # allowed (the web terminal is served from it).
    cors_origins: tuple[str, ...] = ()
    jwt_issuer: str = "exness-auth"
    jwt_audience: str = "exness-api"
    # Login and register: at most `auth_rate_burst` calls per client address per window.
    auth_rate_burst: int = 20
    auth_rate_window_s: int = 60
    # Request bodies above this are refused with 413 before they reach a service.
    max_request_bytes: int = 64 * 1024
    max_static_bytes: int = 16 * 1024 * 1024
    jwks_cache_s: int = 300
    health_interval_s: float = 2.0
    access_log_path: str = "/dev/stdout"
    # Envoy worker threads; 0 lets Envoy use one per core.
    concurrency: int = 0
    # Where the Lua modules are (written by gateway.bundle next to the rendered config).
    lua_dir: Path = Path("lua")
    # The API reference: the OpenAPI document and Swagger UI's bundle it is rendered with, and
    # where gateway.bundle writes them (with the /docs page) next to the rendered config.
    openapi_path: Path = OPENAPI_PATH
    swagger_ui_dir: Path = SWAGGER_UI_DIST
    docs_dir: Path = Path("docs")
    # Where Envoy sends its spans over OTLP/gRPC (a tracing backend or `exness trace-sink`).
    otlp: Upstream = Upstream("127.0.0.1", 4317)
    # Share of requests without a sampling decision that Envoy traces (percent).
    trace_percent: float = 10.0

    @classmethod
    def from_env(cls) -> EdgeConfig:
        """Addresses and token claims from the services' own Settings (the same EXNESS_*
        variables), plus the edge's own EXNESS_EDGE_* knobs."""
        env = os.environ.get
        services = Settings.from_env()
        origins = tuple(o.strip() for o in env("EXNESS_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            auth=Upstream.parse(services.auth_addr),
            auth_jwks_port=services.auth_jwks_port,
            market=Upstream.parse(services.market_addr),
            trading=Upstream.parse(services.trading_addr),
            trading_shards=_upstreams(env("EXNESS_TRADING_SHARD_ADDRS", "")),
            market_replicas=_upstreams(env("EXNESS_MARKET_REPLICA_ADDRS", "")),
            listen_host=env("EXNESS_EDGE_HOST", "127.0.0.1"),
            listen_port=env_int("EXNESS_EDGE_PORT", 8080),
            admin_host=env("EXNESS_EDGE_ADMIN_HOST", "127.0.0.1"),
            admin_port=env_int("EXNESS_EDGE_ADMIN_PORT", 9901),
            descriptor_path=Path(env("EXNESS_DESCRIPTOR", str(DESCRIPTOR_PATH))),
            web_dir=Path(env("EXNESS_WEB_DIR", str(WEB_DIST))),
            cors_origins=origins,
            jwt_issuer=services.jwt_issuer,
            jwt_audience=services.jwt_audience,
            auth_rate_burst=env_int("EXNESS_EDGE_AUTH_RATE_BURST", 20),
            auth_rate_window_s=env_int("EXNESS_EDGE_AUTH_RATE_WINDOW", 60),
            max_request_bytes=env_int("EXNESS_EDGE_MAX_REQUEST_BYTES", 64 * 1024),
            access_log_path=env("EXNESS_EDGE_ACCESS_LOG", "/dev/stdout"),
            concurrency=env_int("EXNESS_EDGE_CONCURRENCY", 0),
            trace_percent=float(env("EXNESS_EDGE_TRACE_PERCENT", "10")),
            otlp=Upstream.from_url(
                env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
                or env("OTEL_EXPORTER_OTLP_ENDPOINT", "")
                or "127.0.0.1:4317"
            ),
        )

    def with_(self, **changes: object) -> EdgeConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def trading_upstreams(self) -> tuple[Upstream, ...]:
        return self.trading_shards or (self.trading,)

    @property
    def market_upstreams(self) -> tuple[Upstream, ...]:
        return self.market_replicas or (self.market,)

    @property
    def url(self) -> str:
        host = (
            "localhost" if self.listen_host in ("0.0.0.0", "127.0.0.1", "::") else self.listen_host
        )
        return f"http://{host}:{self.listen_port}"

    @property
    def self_host(self) -> str:
        """Where this machine reaches the listener."""
        return "127.0.0.1" if self.listen_host in ("0.0.0.0", "::") else self.listen_host

    def allowed_origins(self) -> list[str]:
        own = [f"http://localhost:{self.listen_port}", f"http://127.0.0.1:{self.listen_port}"]
        return list(dict.fromkeys([*own, *self.cors_origins]))


def _upstreams(addresses: str) -> tuple[Upstream, ...]:
    """A comma-separated list of host:port."""
    return tuple(Upstream.parse(a.strip()) for a in addresses.split(",") if a.strip())


# The services the edge routes (their methods get per-method gRPC stats).
PUBLIC_SERVICES = (
    "exness.auth.v1.AuthService",
    "exness.market.v1.MarketDataService",
    "exness.trading.v1.TradingService",
)


def served_methods(descriptor_path: Path) -> list[dict[str, object]]:
    """grpc_stats' allowlist: every method of the public services, from the descriptor set."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path.read_bytes())
    services: list[dict[str, object]] = []
    for file in files.file:
        for service in file.service:
            name = f"{file.package}.{service.name}"
            if name in PUBLIC_SERVICES:
                services.append({"name": name, "method_names": [m.name for m in service.method]})
    return services


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


# The services the edge exposes (to REST through the transcoder, and to gRPC and gRPC-Web).
EXPOSED_SERVICES = frozenset(
    {
        "exness.auth.v1.AuthService",
        "exness.market.v1.MarketDataService",
        "exness.trading.v1.TradingService",
    }
)
# Indentation of a list item under `routes:` and under the jwt_authn `rules:` in the template.
_ITEM_INDENT = " " * 14


def _method_access(descriptor_path: Path) -> list[tuple[str, Access]]:
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path.read_bytes())
    return sorted(declared_methods(files, EXPOSED_SERVICES))


def _yaml_items(items: list[str]) -> str:
    """List items for a placeholder that stands where the first item's dash would be."""
    return ("\n" + _ITEM_INDENT).join(items)


def render(config: EdgeConfig, template: str | None = None) -> str:
    """The Envoy config for `config`. Every placeholder must be filled: a missing one raises
    KeyError rather than producing a config with a hole in it. The repository's template is
    then laid out for the configured shards and replicas (gateway/layout.py)."""
    text = TEMPLATE_PATH.read_text() if template is None else template
    methods = _method_access(config.descriptor_path)
    public = [path for path, access in methods if access is Access.PUBLIC]
    internal = [path for path, access in methods if access is Access.SERVICE]
    values = {
        "LISTEN_HOST": config.listen_host,
        "LISTEN_PORT": str(config.listen_port),
        "ADMIN_HOST": config.admin_host,
        "ADMIN_PORT": str(config.admin_port),
        "AUTH_HOST": config.auth.host,
        "AUTH_PORT": str(config.auth.port),
        "AUTH_JWKS_PORT": str(config.auth_jwks_port),
        "MARKET_HOST": config.market.host,
        "MARKET_PORT": str(config.market.port),
        "TRADING_HOST": config.trading.host,
        "TRADING_PORT": str(config.trading.port),
        "DESCRIPTOR_PATH": str(config.descriptor_path),
        "WEB_DIR": str(config.web_dir),
        # JSON is YAML: a flow sequence of exact-match string matchers.
        "CORS_ORIGIN_MATCHERS": json.dumps([{"exact": o} for o in config.allowed_origins()]),
        "JWT_ISSUER": config.jwt_issuer,
        "JWT_AUDIENCE": config.jwt_audience,
        "AUTH_RATE_BURST": str(config.auth_rate_burst),
        "AUTH_RATE_WINDOW": _duration(config.auth_rate_window_s),
        "MAX_REQUEST_BYTES": str(config.max_request_bytes),
        "MAX_STATIC_BYTES": str(config.max_static_bytes),
        "JWKS_CACHE": _duration(config.jwks_cache_s),
        "HEALTH_INTERVAL": _duration(config.health_interval_s),
        "ACCESS_LOG_PATH": config.access_log_path,
        "LUA_DIR": str(config.lua_dir),
        "DOCS_DIR": str(config.docs_dir),
        "EXPOSED_SERVICES": json.dumps(sorted(EXPOSED_SERVICES)),
        "LOCAL_REPLY_MAPPERS": mappers_yaml(),
        # Generated from each method's declared access (exness.common.v1.access).
        "PUBLIC_METHOD_RULES": _yaml_items(
            [f"- match: {{path: {json.dumps(path)}}}" for path in public]
        ),
        "INTERNAL_METHOD_ROUTES": _yaml_items(
            [
                f"- match: {{path: {json.dumps(path)}}}\n{_ITEM_INDENT}  direct_response: "
                '{status: 404, body: {inline_string: "not found\\n"}}'
                for path in internal
            ]
        ),
        "GRPC_STATS_METHODS": json.dumps(served_methods(config.descriptor_path)),
        "OTLP_HOST": config.otlp.host,
        "OTLP_PORT": str(config.otlp.port),
        "TRACE_PERCENT": f"{config.trace_percent:g}",
    }
    rendered = Template(text).substitute(values)
    if template is not None:
        return rendered
    doc = yaml.safe_load(rendered)
    apply_layout(
        doc,
        [(u.host, u.port) for u in config.trading_upstreams],
        [(u.host, u.port) for u in config.market_upstreams],
    )
    return str(yaml.safe_dump(doc, sort_keys=False, width=1000))

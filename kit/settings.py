"""Settings from the environment, read once at start-up.

Every knob has a default that works on one machine (`exness up`); production overrides them
with environment variables (see docker-compose.yml).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc


def env_switch(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise SystemExit(f"{name} must be on or off, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    # Where embedded PostgreSQL, signing keys and the service token live.
    data_dir: Path = field(default_factory=lambda: Path(".data").resolve())
    # External infrastructure; empty means the embedded defaults.
    database_url: str = ""
    kafka_bootstrap_servers: str = ""
    bind_host: str = "127.0.0.1"
    auth_port: int = 50051
    market_port: int = 50052
    trading_port: int = 50053
    # Auth's public keys (JWKS) over plain HTTP, for the edge's token checks.
    auth_jwks_port: int = 50050
    # Prometheus /metrics of each process (0: none); see docs/observability.md.
    auth_metrics_port: int = 9461
    market_metrics_port: int = 9462
    trading_metrics_port: int = 9463
    poller_metrics_port: int = 9464
    # Where services find each other.
    auth_addr: str = "127.0.0.1:50051"
    market_addr: str = "127.0.0.1:50052"
    trading_addr: str = "127.0.0.1:50053"
    # Access tokens.
    jwt_issuer: str = "exness-auth"
    jwt_audience: str = "exness-api"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # Signing keys: a PEM file or directory of PEM files; empty means data_dir/keys (made on
    # first run).
    signing_keys_path: str = ""
    # A new signing key signs only once it has been published this long (services/auth/keys.py).
    key_publish_delay_s: float = 330.0
    # Shared secret of internal callers (the poller); empty means data_dir/service-token.
    service_token: str = ""
    # Operators' credential for the admin services; empty means data_dir/operator-token.
    operator_token: str = ""
    # Engine sharding: this instance's shard and how many shards exist.
    shard_id: int = 0
    shard_count: int = 1
    # Seconds after which a quote is too old to trade on.
    max_quote_age_s: float = 10.0
    # Share of the poller's quotes traced end to end (each its own trace); 0 turns it off.
    quote_trace_ratio: float = 0.01
    # Pending (limit/stop) orders one account may hold at once.
    max_pending_orders: int = 200
    # Whether instruments trade only inside their sessions (forex and metals close at the
    # weekend); off, everything trades around the clock (platforms tested at any hour).
    trading_sessions: bool = True
    log_level: str = "INFO"
    log_format: str = "json"
    # Seconds to let in-flight calls finish on SIGTERM.
    shutdown_grace_s: float = 10.0

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            data_dir=Path(env("EXNESS_DATA_DIR", ".data")).resolve(),
            database_url=env("DATABASE_URL", ""),
            kafka_bootstrap_servers=env("KAFKA_BOOTSTRAP_SERVERS", ""),
            bind_host=env("EXNESS_BIND_HOST", "127.0.0.1"),
            auth_port=env_int("EXNESS_AUTH_PORT", 50051),
            market_port=env_int("EXNESS_MARKET_PORT", 50052),
            trading_port=env_int("EXNESS_TRADING_PORT", 50053),
            auth_jwks_port=env_int("EXNESS_AUTH_JWKS_PORT", 50050),
            auth_metrics_port=env_int("EXNESS_AUTH_METRICS_PORT", 9461),
            market_metrics_port=env_int("EXNESS_MARKET_METRICS_PORT", 9462),
            trading_metrics_port=env_int("EXNESS_TRADING_METRICS_PORT", 9463),
            poller_metrics_port=env_int("EXNESS_POLLER_METRICS_PORT", 9464),
            auth_addr=env("EXNESS_AUTH_ADDR", "127.0.0.1:50051"),
            market_addr=env("EXNESS_MARKET_ADDR", "127.0.0.1:50052"),
            trading_addr=env("EXNESS_TRADING_ADDR", "127.0.0.1:50053"),
            jwt_issuer=env("EXNESS_JWT_ISSUER", "exness-auth"),
            jwt_audience=env("EXNESS_JWT_AUDIENCE", "exness-api"),
            access_token_ttl_s=env_int("EXNESS_ACCESS_TOKEN_TTL", 900),
            refresh_token_ttl_s=env_int("EXNESS_REFRESH_TOKEN_TTL", 30 * 24 * 3600),
            signing_keys_path=env("EXNESS_SIGNING_KEYS", ""),
            key_publish_delay_s=env_float("EXNESS_KEY_PUBLISH_DELAY", 330.0),
            service_token=env("EXNESS_SERVICE_TOKEN", ""),
            operator_token=env("EXNESS_OPERATOR_TOKEN", ""),
            shard_id=env_int("EXNESS_SHARD_ID", 0),
            shard_count=env_int("EXNESS_SHARD_COUNT", 1),
            max_quote_age_s=env_float("EXNESS_MAX_QUOTE_AGE", 10.0),
            trading_sessions=env_switch("EXNESS_TRADING_SESSIONS", True),
            quote_trace_ratio=env_float("EXNESS_QUOTE_TRACE_RATIO", 0.01),
            log_level=env("EXNESS_LOG_LEVEL", "INFO").upper(),
            log_format=env("EXNESS_LOG_FORMAT", "json"),
            shutdown_grace_s=env_float("EXNESS_SHUTDOWN_GRACE", 10.0),
            max_pending_orders=env_int("EXNESS_MAX_PENDING_ORDERS", 200),
        )

    def resolved_service_token(self) -> str:
        """The internal service credential: from the environment, or a random secret kept in
        the data directory (created on first use, readable by the owner only)."""
        return self.service_token or self._secret_file("service-token")

    def resolved_operator_token(self) -> str:
        """The operators' credential (admin services), kept like the service credential."""
        return self.operator_token or self._secret_file("operator-token")

    def _secret_file(self, name: str) -> str:
        """Services starting side by side may both create it: the first link wins and every
        process reads that one."""
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
            tmp.write_text(secrets.token_urlsafe(32))
            tmp.chmod(0o600)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip()


# The environment variable behind each setting that a service may require.
_ENV_NAMES = {"database_url": "DATABASE_URL", "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS"}


def require(settings: Settings, command: str, *names: str, why: str = "") -> None:
    """Exits with one line naming every required setting that is empty (a service started by
    hand without its infrastructure), instead of a traceback from the first connection."""
    missing = [_ENV_NAMES[name] for name in names if not getattr(settings, name)]
    if missing:
        because = f"{why}; " if why else ""
        them = "them" if len(missing) > 1 else "it"
        raise SystemExit(
            f"exness {command}: {' and '.join(missing)} not set "
            f"({because}`exness up` sets {them} for you)"
        )

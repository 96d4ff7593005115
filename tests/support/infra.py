"""Real infrastructure for the test session: embedded PostgreSQL and the embedded
Kafka-protocol broker, each started once per session on free ports."""

from __future__ import annotations

import random
import socket
import tempfile
from pathlib import Path

from cli.devstack.broker import EmbeddedBroker
from cli.devstack.postgres import EmbeddedPostgres
from kit.data.migrations import migrate

# Below the kernel's ephemeral range (32768-60999 by default). A port the kernel hands out from
# that range can be taken as the source port of any outgoing connection before the server that
# was given it binds it ("port already taken" at start-up); ports below it are never used so.
_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now and that this session has not handed out before."""
    for _ in range(1000):
        port = random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORTS.start}-{_PORTS.stop - 1}")


def start_postgres(root: Path) -> EmbeddedPostgres:
    server = EmbeddedPostgres(root / "pgdata", port=free_port())
    server.start()
    migrate(server.url)
    return server


def fresh_database(url: str, prefix: str) -> str:
    """A new, migrated database on the server of `url`, for a test whose processes must not
    share the session database (e.g. one that needs another engine shard count)."""
    import uuid

    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    fresh = psycopg.conninfo.make_conninfo(url, dbname=name)
    migrate(fresh)
    return fresh


def start_broker(root: Path) -> EmbeddedBroker:
    broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
    broker.start()
    return broker


def session_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="exness-test-"))

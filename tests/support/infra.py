"""Real infrastructure for the test session: embedded PostgreSQL and the embedded
Kafka-protocol broker, each started once per session on free ports."""

from __future__ import annotations

import tempfile
from pathlib import Path

from cli.devstack.broker import EmbeddedBroker
from cli.devstack.postgres import EmbeddedPostgres
from kit.data.migrations import migrate
from kit.ports import free_port

__all__ = ["free_port", "fresh_database", "session_root", "start_broker", "start_postgres"]


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

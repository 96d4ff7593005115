"""Applies migrations/*.sql in file-name order, each once, each in its own transaction.

Applied files are recorded with a checksum in schema_migrations; editing an applied file is an
error (write a new migration instead). An advisory lock makes concurrent starts safe.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg

from kit.assets import asset

log = logging.getLogger(__name__)

DEFAULT_DIR = asset("migrations")
_LOCK_ID = 0x65786E65  # "exne"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = DEFAULT_DIR) -> list[Migration]:
    return [Migration(p.stem, p) for p in sorted(directory.glob("*.sql"))]


def migrate(url: str, directory: Path = DEFAULT_DIR) -> list[str]:
    """Applies what is pending; returns the versions applied now."""
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done: dict[str, str] = dict(
                conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
            )
            for migration in discover(directory):
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version} was changed after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                        (migration.version, migration.checksum),
                    )
                log.info("applied migration", extra={"version": migration.version})
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now

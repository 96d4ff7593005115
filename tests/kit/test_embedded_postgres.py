"""Embedded PostgreSQL keeps its data across restarts and refuses a taken port clearly."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from cli.devstack.postgres import EmbeddedPostgres
from tests.support.infra import free_port

pytestmark = pytest.mark.slow  # starts PostgreSQL servers of its own


def test_data_survives_a_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pgdata", port=free_port())
    url = server.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
    finally:
        server.stop()
    again = EmbeddedPostgres(tmp_path / "pgdata", port=free_port())
    url = again.start()
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    finally:
        again.stop()


def test_a_taken_port_is_reported(tmp_path: Path, postgres: EmbeddedPostgres) -> None:
    clash = EmbeddedPostgres(tmp_path / "pgdata", port=postgres.port)
    with pytest.raises(RuntimeError, match="already taken"):
        clash.start()
    assert not (tmp_path / "pgdata").exists()  # refused before initdb ran

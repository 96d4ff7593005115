"""The migrations runner against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from kit.data.migrations import DEFAULT_DIR, MigrationError, migrate


def test_rerunning_applies_nothing(database_url: str) -> None:
    assert migrate(database_url) == []
    with psycopg.connect(database_url) as conn:
        versions = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    assert {p.stem for p in DEFAULT_DIR.glob("*.sql")} <= versions


def test_new_files_apply_in_order_and_once(database_url: str, tmp_path: Path) -> None:
    schema = f"m_{tmp_path.name[-8:].lower().replace('-', '_')}"
    (tmp_path / "a_first.sql").write_text(
        f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (x int);"
    )
    (tmp_path / "b_second.sql").write_text(f"INSERT INTO {schema}.t VALUES (1), (2);")
    assert migrate(database_url, tmp_path) == ["a_first", "b_second"]
    assert migrate(database_url, tmp_path) == []
    with psycopg.connect(database_url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {schema}.t").fetchone() == (2,)


def test_a_failing_migration_applies_nothing_of_itself(database_url: str, tmp_path: Path) -> None:
    schema = f"f_{tmp_path.name[-8:].lower().replace('-', '_')}"
    (tmp_path / "a_bad.sql").write_text(f"CREATE SCHEMA {schema}; SELECT no_such_function();")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate(database_url, tmp_path)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regnamespace(%s)", (schema,)).fetchone() == (None,)
        assert (
            conn.execute("SELECT 1 FROM schema_migrations WHERE version = 'a_bad'").fetchone()
            is None
        )


def test_editing_an_applied_migration_is_refused(database_url: str, tmp_path: Path) -> None:
    name = f"c_edit_{tmp_path.name[-6:]}"
    path = tmp_path / f"{name}.sql"
    path.write_text("SELECT 1;")
    migrate(database_url, tmp_path)
    path.write_text("SELECT 2;")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(database_url, tmp_path)

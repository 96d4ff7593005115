"""Packages the platform's non-Python run-time files (migrations, the generated descriptor set
and OpenAPI document, the built web terminal, Swagger UI's bundle) into the wheel as the
`exness_assets` package, mirroring their repository paths (kit/assets.py finds them there).
Everything else is declared in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# Repository-relative files and directories; optional ones are packaged when they exist (the
# web terminal and Swagger UI need Node tooling to build or install).
REQUIRED = ["migrations", "gen/descriptor/exness.binpb", "gen/openapi/exness.swagger.json"]
OPTIONAL = [
    "web/dist",
    "node_modules/swagger-ui-dist/swagger-ui-bundle.js",
    "node_modules/swagger-ui-dist/swagger-ui.css",
]


class BuildWithAssets(build_py):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "exness_assets"
        target.mkdir(parents=True, exist_ok=True)
        (target / "__init__.py").write_text(
            '"""Run-time files of the platform (kit/assets.py)."""\n'
        )
        for relative in REQUIRED + OPTIONAL:
            source = HERE / relative
            if not source.exists():
                if relative in REQUIRED:
                    raise FileNotFoundError(f"{relative} is missing: run `make gen` first")
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, destination, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, destination)


setup(cmdclass={"build_py": BuildWithAssets})

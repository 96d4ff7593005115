"""Writes what Envoy loads into one directory: the rendered envoy.yaml and its Lua modules.
`exness up` writes it to the data directory; docker-compose writes it to a volume that the
official Envoy image mounts (the same template either way)."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.config import DOCS_PAGE, LUA_SOURCES, EdgeConfig, render
from gateway.rest_fields import render_lua
from kit.files import write_atomic


def write_bundle(config: EdgeConfig, out_dir: Path) -> Path:
    """Renders into `out_dir` and returns the config's path. Envoy must see the bundle at the
    same path (docker-compose mounts its volume at /etc/envoy in both containers)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lua_out = out_dir / "lua"
    lua_out.mkdir(exist_ok=True)
    for source in LUA_SOURCES.glob("*.lua"):
        shutil.copyfile(source, lua_out / source.name)
    write_atomic(lua_out / "exness_rest_fields.lua", render_lua(config.descriptor_path))
    docs_out = write_docs(config, out_dir / "docs")
    config_path = out_dir / "envoy.yaml"
    write_atomic(config_path, render(config.with_(lua_dir=lua_out.resolve(), docs_dir=docs_out)))
    return config_path


def write_docs(config: EdgeConfig, out_dir: Path) -> Path:
    """The API reference Envoy serves: the OpenAPI document, the /docs page and Swagger UI's
    bundle. Without Node tooling (no swagger-ui-dist) the page says so; the edge still starts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config.openapi_path, out_dir / "openapi.json")
    shutil.copyfile(DOCS_PAGE, out_dir / "index.html")
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        source = config.swagger_ui_dir / name
        if source.exists():
            shutil.copyfile(source, out_dir / name)
        else:
            write_atomic(
                out_dir / name,
                'document.write("Swagger UI is not installed (npm install); '
                'the API document is at /openapi.json");\n'
                if name.endswith(".js")
                else "",
            )
    return out_dir.resolve()

"""Writes what Envoy loads into one directory: the rendered envoy.yaml and its Lua modules.
`exness up` writes it to the data directory; docker-compose writes it to a volume that the
official Envoy image mounts (the same template either way)."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.config import LUA_SOURCES, EdgeConfig, render
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
    config_path = out_dir / "envoy.yaml"
    write_atomic(config_path, render(config.with_(lua_dir=lua_out.resolve())))
    return config_path

"""`exness edge`: the Envoy config outside `exness up`.

    exness edge render --out DIR [--copy-assets]   # DIR/envoy.yaml + DIR/lua (docker-compose)
    exness edge validate [--out DIR]               # render, then `envoy --mode validate`
    exness edge run                                # render and run Envoy in the foreground

Addresses come from the same EXNESS_* variables as the services (see gateway/config.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from gateway.bundle import write_bundle
from gateway.config import EdgeConfig
from gateway.process import envoy_binary, validate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["render", "validate", "run"])
    parser.add_argument("--out", help="directory for envoy.yaml and its Lua modules")
    parser.add_argument(
        "--copy-assets",
        action="store_true",
        help="also copy the descriptor set and the web bundle into --out and "
        "point the config there (for a container that mounts only --out)",
    )


def _copy_assets(config: EdgeConfig, out: Path) -> EdgeConfig:
    shutil.copyfile(config.descriptor_path, out / "exness.binpb")
    web = out / "web"
    web.mkdir(parents=True, exist_ok=True)
    for name in ("index.html", "app.js", "app.css"):
        source = config.web_dir / name
        if source.exists():
            shutil.copyfile(source, web / name)
        else:  # the edge still starts; the page says what is missing
            (web / name).write_text(
                ""
                if name != "index.html"
                else "<!doctype html><p>The web terminal was not built into "
                "this image (npm run build:web).</p>\n"
            )
    return config.with_(descriptor_path=out / "exness.binpb", web_dir=web)


def run(args: argparse.Namespace) -> int:
    config = EdgeConfig.from_env()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="exness-edge-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.copy_assets:
        config = _copy_assets(config, out)
    path = write_bundle(config, out)
    if args.action == "render":
        print(f"wrote {path}")
        return 0
    checked = validate(path)
    if args.action == "validate":
        print(checked.output if not checked.ok else f"{path}: OK")
        return 0 if checked.ok else 1
    if not checked.ok:
        print(checked.output, file=sys.stderr)
        return 1
    binary = str(envoy_binary())
    os.execv(binary, [binary, "-c", str(path), "--log-level", "warn"])
    return 0  # not reached

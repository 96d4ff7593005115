"""The breaking-change gate: the contracts are compared with the latest release image under
releases/, and a change that would break a client fails it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Runs buf a few times: tens of seconds, kept out of the fast lane.
pytestmark = pytest.mark.slow


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What the gate needs from a clone: the protos, the vendored imports, buf.yaml, the
    releases and the script."""
    for part in ("proto", "third_party", "releases"):
        shutil.copytree(REPO / part, tmp_path / part)
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "contracts.sh", tmp_path / "scripts")
    shutil.copy(REPO / "buf.yaml", tmp_path)
    return tmp_path


def _contracts(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/contracts.sh", *args],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "BUF": str(REPO / "node_modules" / ".bin" / "buf")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_release_is_recorded() -> None:
    assert sorted(p.name for p in (REPO / "releases").glob("contracts-*.binpb"))


def test_the_current_contracts_pass_the_gate(checkout: Path) -> None:
    checked = _contracts(checkout, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_renamed_field_fails_the_gate(checkout: Path) -> None:
    proto = checkout / "proto" / "exness" / "market" / "v1" / "market.proto"
    proto.write_text(proto.read_text().replace("string volume_max = 8;", "string max_volume = 8;"))
    checked = _contracts(checkout, "check")
    assert checked.returncode != 0
    assert 'changed name from "volume_max" to "max_volume"' in checked.stdout


def test_release_records_a_new_image_and_never_rewrites_one(checkout: Path) -> None:
    proto = checkout / "proto" / "exness" / "market" / "v1" / "market.proto"
    proto.write_text(
        proto.read_text().replace(
            "  bool closed = 7;\n",
            "  bool closed = 7;\n  // A field added in 1.10.0.\n  int64 n = 8;\n",
        )
    )
    released = _contracts(checkout, "release", "1.10.0")
    assert released.returncode == 0, released.stdout + released.stderr
    assert (checkout / "releases" / "contracts-1.10.0.binpb").exists()
    again = _contracts(checkout, "release", "1.10.0")
    assert again.returncode != 0
    assert "never rewritten" in again.stderr
    # The gate now compares with the newest release, which has the field.
    proto.write_text(proto.read_text().replace("  int64 n = 8;\n", "  reserved 8;\n"))
    checked = _contracts(checkout, "check")
    assert checked.returncode != 0
    assert "contracts-1.10.0.binpb" not in checked.stdout  # failed: no "no breaking change"
    assert "deleted" in checked.stdout

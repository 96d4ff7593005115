"""The contracts stand alone: a copy of proto/, the vendored Google protos and buf.yaml (what a
stranger takes from a fresh clone) lints, builds and generates with nothing but `buf`, and every
file gives each language a package of its own."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "node_modules" / ".bin" / "buf"
LANGUAGE_OPTIONS = (
    "go_package",
    "java_package",
    "csharp_namespace",
    "ruby_package",
    "php_namespace",
    "swift_prefix",
    "objc_class_prefix",
)


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contracts")
    for part in ("proto", "third_party"):
        shutil.copytree(REPO / part, root / part)
    shutil.copyfile(REPO / "buf.yaml", root / "buf.yaml")
    return root


def _buf(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No network settings on purpose: the run must not need a registry.
    return subprocess.run([str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_lint_build_and_generate_from_the_protos_alone(fresh_copy: Path) -> None:
    lint = _buf(fresh_copy, "lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    built = _buf(fresh_copy, "build", "-o", "image.binpb")
    assert built.returncode == 0, built.stderr
    (fresh_copy / "buf.gen.yaml").write_text(
        "version: v2\nplugins:\n"
        f"  - local: {REPO / 'node_modules' / '.bin' / 'protoc-gen-es'}\n"
        "    out: out\n    opt: target=ts\n    include_imports: true\n"
    )
    generated = _buf(fresh_copy, "generate", "--path", "proto/exness")
    assert generated.returncode == 0, generated.stderr
    assert (fresh_copy / "out" / "exness" / "trading" / "v1" / "trading_pb.ts").exists()
    assert (fresh_copy / "out" / "google" / "api" / "annotations_pb.ts").exists()


def test_lint_runs_the_comment_rules(fresh_copy: Path) -> None:
    """STANDARD plus COMMENTS: an undocumented field fails the lint."""
    proto = fresh_copy / "proto" / "exness" / "market" / "v1" / "market.proto"
    original = proto.read_text()
    try:
        proto.write_text(original.replace("  // Number of quotes in the interval.\n", ""))
        lint = _buf(fresh_copy, "lint")
        assert lint.returncode != 0
        assert 'Field "tick_count" should have a non-empty comment' in lint.stdout
    finally:
        proto.write_text(original)


def test_every_file_names_a_package_for_every_language() -> None:
    image = descriptor_pb2.FileDescriptorSet.FromString(
        (REPO / "gen" / "descriptor" / "exness.binpb").read_bytes()
    )
    ours = [f for f in image.file if f.package.startswith("exness.")]
    assert len(ours) >= 5
    for file in ours:
        missing = [name for name in LANGUAGE_OPTIONS if not getattr(file.options, name)]
        assert not missing, f"{file.name} sets no {missing}"
        assert file.options.go_package.endswith(file.package.split(".")[1] + "v1")

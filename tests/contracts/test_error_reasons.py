"""Every ErrorInfo reason the platform sends is a value of exness.common.v1.ErrorReason, and
every declared value is sent by something. The reasons are read from the code itself: string
reasons handed to the kit's error constructors, `ERROR_REASON_*` names, and the edge's own
refusals."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from exness.common.v1 import errors_pb2

from gateway.local_replies import REFUSALS

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("services", "kit", "gateway", "cli")
PREFIX = "ERROR_REASON_"
# Error constructors (kit.rpc.errors for the wire, kit.refusal for pure domain code) and the
# position of their `reason` argument.
REASON_POSITION = {
    "ServiceError": 1,
    "Refusal": 1,
    "not_found": 0,
    "failed_precondition": 0,
    "precondition_failed": 0,
    "unavailable": 0,
    "invalid_field": 2,
    "invalid_argument": 1,
}


def _called_name(call: ast.Call) -> str:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return ""


def _constants(tree: ast.AST) -> dict[str, str]:
    """Module-level `NAME = "TEXT"` assignments, so a reason passed by name is found too."""
    found: dict[str, str] = {}
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def reasons_in(tree: ast.AST) -> Iterator[str]:
    constants = _constants(tree)

    def _text(node: ast.AST | None) -> str | None:
        """A string constant (or a module constant's value); an empty one means "no reason"
        (e.g. an order not rejected)."""
        if isinstance(node, ast.Name):
            return constants.get(node.id) or None
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value:
            return node.value
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            position = REASON_POSITION.get(_called_name(node))
            if position is not None and len(node.args) > position:
                found = _text(node.args[position])
                if found is not None:
                    yield found
            for keyword in node.keywords:
                if keyword.arg == "reason" and (found := _text(keyword.value)) is not None:
                    yield found
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            named = node.args.args + node.args.kwonlyargs
            defaults: list[ast.expr | None] = [None] * (
                len(node.args.args) - len(node.args.defaults)
            )
            defaults += [*node.args.defaults, *node.args.kw_defaults]
            for argument, default in zip(named, defaults, strict=True):
                if argument.arg == "reason" and (found := _text(default)) is not None:
                    yield found
        elif isinstance(node, ast.Attribute | ast.Name):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            if name.startswith(PREFIX) and name != PREFIX + "UNSPECIFIED":
                yield name.removeprefix(PREFIX)


def reasons_sent() -> dict[str, set[str]]:
    """Reason -> the files that send it."""
    sent: dict[str, set[str]] = {}
    for top in SOURCES:
        for path in sorted((REPO / top).rglob("*.py")):
            for reason in reasons_in(ast.parse(path.read_text(), str(path))):
                sent.setdefault(reason, set()).add(str(path.relative_to(REPO)))
    for refusal in REFUSALS:
        sent.setdefault(refusal.reason_name, set()).add("gateway/local_replies.py (the edge)")
    return sent


def declared() -> set[str]:
    names = {name.removeprefix(PREFIX) for name in errors_pb2.ErrorReason.keys()}  # noqa: SIM118
    return names - {"UNSPECIFIED"}


def test_the_scan_sees_the_code() -> None:
    """Guards the scan itself: reasons known to be sent by services, kit and edge are found."""
    sent = reasons_sent()
    for reason in ("EMAIL_TAKEN", "INSUFFICIENT_MARGIN", "TOKEN_INVALID", "RATE_LIMITED"):
        assert reason in sent, reason
    assert len(sent) >= 20


def test_every_reason_sent_is_declared() -> None:
    undeclared = {r: files for r, files in reasons_sent().items() if r not in declared()}
    assert not undeclared, f"reasons sent but not in ErrorReason: {undeclared}"


def test_every_declared_reason_is_sent() -> None:
    never_sent = declared() - set(reasons_sent())
    assert not never_sent, f"ErrorReason values nothing sends: {sorted(never_sent)}"


def test_the_scan_catches_an_undeclared_reason() -> None:
    code = 'raise not_found("NO_SUCH_REASON", "x")\ndef f(reason: str = "ALSO_NOT"): ...\n'
    code += 'NAMED = "BY_NAME"\nraise Refusal(kind, NAMED, "x")\n'
    assert set(reasons_in(ast.parse(code))) == {"NO_SUCH_REASON", "ALSO_NOT", "BY_NAME"}

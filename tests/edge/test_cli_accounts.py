"""The account commands of the `exness` CLI against the platform: open a second account, move
funds with --account, and read its transactions; one account's figures never leak into the
other's."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.edge.conftest import Stack
from tests.edge.test_cli import _exness, _json


def test_account_commands(stack: Stack, tmp_path: Path) -> None:
    email = f"cli-acc-{uuid.uuid4().hex[:10]}@example.com"
    assert _exness(stack, tmp_path, "register", email).returncode == 0
    types = _json(_exness(stack, tmp_path, "account-types", "--json"))
    assert [t["name"] for t in types] == ["standard", "pro", "raw_spread", "zero"]
    created = _json(
        _exness(stack, tmp_path, "create-account", "zero", "--real", "--leverage", "200", "--json")
    )
    assert (created["accountType"], created["kind"], created["leverage"]) == (
        "zero",
        "ACCOUNT_KIND_REAL",
        200,
    )
    second = created["accountId"]
    assert _exness(stack, tmp_path, "deposit", "500", "--account", second).returncode == 0
    assert _exness(stack, tmp_path, "withdraw", "125.50", "--account", second).returncode == 0
    refused = _exness(stack, tmp_path, "withdraw", "1000", "--account", second)
    assert refused.returncode == 1
    assert "INSUFFICIENT_FREE_MARGIN" in refused.stderr

    accounts = _json(_exness(stack, tmp_path, "accounts", "--json"))
    assert [(a["accountType"], a["balance"]) for a in accounts] == [
        ("standard", "0.00"),
        ("zero", "374.50"),
    ]
    history = _json(_exness(stack, tmp_path, "transactions", "--account", second, "--json"))
    assert [(e["kind"], e["amount"], e["balanceAfter"]) for e in history] == [
        ("LEDGER_ENTRY_KIND_WITHDRAWAL", "-125.50", "374.50"),
        ("LEDGER_ENTRY_KIND_DEPOSIT", "500.00", "500.00"),
    ]
    assert _json(_exness(stack, tmp_path, "transactions", "--json")) == []

"""The account paths of issue 15 through the real Envoy (REST/JSON transcoding, the JSON
guard, JWT, routing to the caller's shard): account types, several accounts, withdrawals,
the transaction history with its time window, and quotes with an account type's spread."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from tests.edge.conftest import User, register
from tests.edge.test_rest import _quote


def _reason(reply: httpx.Response) -> str:
    reason: str = next(d["reason"] for d in reply.json()["details"] if "reason" in d)
    return reason


async def test_account_types_are_public(api: httpx.AsyncClient) -> None:
    reply = await api.get("/v1/accountTypes")
    assert reply.status_code == 200, reply.text
    types = reply.json()["accountTypes"]
    assert [t["name"] for t in types] == ["standard", "pro", "raw_spread", "zero"]
    raw = {x["symbol"]: x for x in types[2]["terms"]}
    assert raw["EURUSD"] == {"symbol": "EURUSD", "spreadMarkup": "0", "commissionPerLot": "3.50"}


async def test_accounts_withdraw_and_transactions_over_rest(
    api: httpx.AsyncClient, user: User
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    created = await api.post(
        "/v1/accounts",
        headers=user.auth,
        json={"accountType": "raw_spread", "kind": "ACCOUNT_KIND_REAL", "leverage": 500},
    )
    assert created.status_code == 200, created.text
    second = created.json()["account"]
    assert (second["accountType"], second["kind"], second["leverage"]) == (
        "raw_spread",
        "ACCOUNT_KIND_REAL",
        500,
    )
    # The edge's JSON guard refuses a field the message does not define.
    unknown_field = await api.post(
        "/v1/accounts", headers=user.auth, json={"accountType": "pro", "colour": "blue"}
    )
    assert unknown_field.status_code == 400, unknown_field.text
    unknown_type = await api.post("/v1/accounts", headers=user.auth, json={"accountType": "gold"})
    assert unknown_type.status_code == 400
    assert _reason(unknown_type) == "UNKNOWN_ACCOUNT_TYPE"

    listed = (await api.get("/v1/accounts", headers=user.auth)).json()["accounts"]
    assert [(a["accountType"], a["isDefault"]) for a in listed] == [
        ("standard", True),
        ("raw_spread", False),
    ]
    account_id = second["accountId"]
    deposit = await api.post(
        "/v1/account:deposit", headers=user.auth, json={"amount": "300", "accountId": account_id}
    )
    assert deposit.status_code == 200, deposit.text
    withdrawn = await api.post(
        "/v1/account:withdraw", headers=user.auth, json={"amount": "100", "accountId": account_id}
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["entry"]["kind"] == "LEDGER_ENTRY_KIND_WITHDRAWAL"
    assert withdrawn.json()["account"]["balance"] == "200.00"
    too_much = await api.post(
        "/v1/account:withdraw",
        headers=user.auth,
        json={"amount": "200.01", "accountId": account_id},
    )
    assert too_much.status_code == 400, too_much.text
    assert _reason(too_much) == "INSUFFICIENT_FREE_MARGIN"

    page = await api.get(
        "/v1/transactions",
        headers=user.auth,
        params={"accountId": account_id, "pageSize": 1, "startTime": started.isoformat()},
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert [(e["kind"], e["amount"], e["balanceAfter"]) for e in body["entries"]] == [
        ("LEDGER_ENTRY_KIND_WITHDRAWAL", "-100.00", "200.00")
    ]
    rest = await api.get(
        "/v1/transactions",
        headers=user.auth,
        params={"accountId": account_id, "pageToken": body["nextPageToken"]},
    )
    assert [e["kind"] for e in rest.json()["entries"]] == ["LEDGER_ENTRY_KIND_DEPOSIT"]
    future = await api.get(
        "/v1/trades",
        headers=user.auth,
        params={"accountId": account_id, "startTime": "2999-01-01T00:00:00Z"},
    )
    assert future.status_code == 200, future.text
    assert future.json()["trades"] == []
    default_positions = await api.get(
        "/v1/positions", headers=user.auth, params={"accountId": listed[0]["accountId"]}
    )
    assert default_positions.status_code == 200

    stranger = await register(api, deposit=None)
    hidden = await api.get("/v1/account", headers=stranger.auth, params={"accountId": account_id})
    assert hidden.status_code == 404, hidden.text
    assert _reason(hidden) == "ACCOUNT_NOT_FOUND"


async def test_quote_with_an_account_types_spread(api: httpx.AsyncClient) -> None:
    await _quote(api, "EURUSD")
    both = []
    for params in ({}, {"accountType": "raw_spread"}):
        reply = await api.get("/v1/quotes/EURUSD", params=params)
        assert reply.status_code == 200, reply.text
        both.append(reply.json()["quote"])
    standard, raw = both
    spread = Decimal(standard["ask"]) - Decimal(standard["bid"])
    raw_spread = Decimal(raw["ask"]) - Decimal(raw["bid"])
    # The feed may move between the two calls; the markup (0.00010) may not.
    assert raw_spread < spread
    unknown = await api.get("/v1/quotes/EURUSD", params={"accountType": "gold"})
    assert unknown.status_code == 400
    assert _reason(unknown) == "UNKNOWN_ACCOUNT_TYPE"

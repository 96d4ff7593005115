"""Idempotent placement on its own (services/trading/idempotency.py), without an engine: a new
key replays nothing, the same key with the same parameters replays the first order's id, the
same key with other parameters is refused; the account is never changed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kit.refusal import Refusal, RefusalKind
from services.trading.idempotency import replayed_order
from services.trading.model import Account, OrderType, Side
from services.trading.orders import OrderRequest
from tests.trading.support import T0

D = Decimal


def account_with(key: str, order_id: int, req: OrderRequest) -> Account:
    account = Account(7, "alice", 0, 100, D(1000), T0)
    account.requests[key] = (order_id, req.fingerprint())
    return account


def buy(volume: str, key: str) -> OrderRequest:
    return OrderRequest("BTCUSD", Side.BUY, OrderType.MARKET, volume=D(volume), client_order_id=key)


def test_a_new_key_or_no_key_replays_nothing() -> None:
    account = account_with("k1", 42, buy("0.10", "k1"))
    assert replayed_order(account, buy("0.10", "k2"), buy("0.10", "k2").fingerprint(), T0) is None
    no_key = buy("0.10", "")
    assert replayed_order(account, no_key, "", T0) is None


def test_a_retry_replays_the_first_orders_id() -> None:
    req = buy("0.10", "k1")
    account = account_with("k1", 42, req)
    first = replayed_order(account, req, req.fingerprint(), T0)
    assert first is not None
    assert (first.order_id, first.account_id, first.client_order_id) == (42, 7, "k1")
    assert (first.symbol, first.side, first.type) == ("BTCUSD", Side.BUY, OrderType.MARKET)
    assert account.requests == {"k1": (42, req.fingerprint())}


def test_the_same_key_with_other_parameters_is_refused() -> None:
    account = account_with("k1", 42, buy("0.10", "k1"))
    other = buy("0.20", "k1")
    with pytest.raises(Refusal) as refused:
        replayed_order(account, other, other.fingerprint(), T0)
    assert refused.value.kind is RefusalKind.PRECONDITION
    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert refused.value.metadata == {"client_order_id": "k1"}
    assert account.requests["k1"][0] == 42

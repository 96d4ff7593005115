"""Idempotent order placement: a PlaceOrder retried with the same `client_order_id` returns the
first result; the same key with other parameters is refused. Reads the account, changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from kit.refusal import precondition_failed
from services.trading.model import ZERO, Account, Order
from services.trading.orders import OrderRequest


def replayed_order(
    account: Account, req: OrderRequest, fingerprint: str, now: datetime
) -> Order | None:
    """The first order placed with `req.client_order_id` on `account` (None: a new key), as an
    Order carrying only its id: the order may have moved on since (filled, cancelled), so the
    service answers a retry from what was committed. Refuses IDEMPOTENCY_KEY_REUSED when the
    key was used with other order parameters (`fingerprint`)."""
    seen = account.requests.get(req.client_order_id) if req.client_order_id else None
    if seen is None:
        return None
    order_id, first = seen
    if first != fingerprint:
        raise precondition_failed(
            "IDEMPOTENCY_KEY_REUSED",
            "client_order_id was already used with different order parameters",
            client_order_id=req.client_order_id,
        )
    return Order(
        order_id,
        account.account_id,
        req.symbol,
        req.side,
        req.type,
        ZERO,
        0,
        now,
        client_order_id=req.client_order_id,
    )

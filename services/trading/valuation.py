"""What an account is worth at the latest quotes: equity (balance plus the floating P&L of its
open positions, each at the price it would close at with the account type's spread) and the
figures shown with it. Pure functions: nothing here changes an account.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from services.trading.model import Account, AccountView, Quote
from services.trading.pricing import TypePricing


def equity_of(account: Account, quotes: Mapping[str, Quote], pricing: TypePricing) -> Decimal:
    """Balance plus floating P&L; a symbol with no quote yet (after a restart) is valued at its
    open price, i.e. adds nothing."""
    equity = account.balance
    kind = account.account_type
    # Most accounts trade at the published quote: no per-symbol lookup for them.
    shifted = kind in pricing.shifted_types
    typed = pricing.typed_quote
    for symbol, exposure in account.exposure.items():
        quote = quotes.get(symbol)
        if quote is not None:
            equity += exposure.pnl(typed(kind, quote) if shifted else quote)
    return equity


def account_view(
    account: Account, equity: Decimal, margin_call_level: Decimal, stop_out_level: Decimal
) -> AccountView:
    """The account's figures at `equity`, with its type's margin-call and stop-out levels."""
    return AccountView(
        account.account_id,
        account.user_id,
        account.shard,
        account.balance,
        equity,
        account.margin,
        equity - account.balance,
        account.leverage,
        margin_call_level,
        stop_out_level,
        account.margin_call,
        account.created_at,
        account.updated_at,
        account.account_type,
        account.kind,
        account.swap_free,
        account.is_default,
    )

"""Opening trading accounts: the account type asked for, the leverage an account opens at, and
how many accounts a user may hold. Pure checks: each raises a Refusal and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from kit.data.account_types import AccountType
from kit.refusal import invalid_field, precondition_failed
from services.trading.orders import check_type_leverage


def account_type_named(types: Mapping[str, AccountType], name: str) -> AccountType:
    """The account type `name`; an unknown one is refused, listing those there are."""
    account_type = types.get(name)
    if account_type is None:
        raise invalid_field(
            "account_type",
            f"no account type {name!r}; one of {', '.join(types)}",
            "UNKNOWN_ACCOUNT_TYPE",
        )
    return account_type


def opening_leverage(requested: int, default: int, account_type: AccountType) -> int:
    """The leverage a new account opens at: `requested`, or for 0 the platform `default`
    capped by the type; above the type's maximum is refused."""
    leverage = min(default, account_type.max_leverage) if requested == 0 else requested
    check_type_leverage(account_type, leverage)
    return leverage


def check_account_limit(held: int, max_accounts: int) -> None:
    """Refuses (ACCOUNT_LIMIT) one more account when the user would hold more than allowed;
    `held` counts the default account, opened first if the user has none yet."""
    if held >= max_accounts:
        raise precondition_failed(
            "ACCOUNT_LIMIT",
            f"you already hold {max_accounts} trading accounts, the most allowed",
            limit=str(max_accounts),
        )

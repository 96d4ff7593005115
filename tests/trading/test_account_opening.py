"""Opening rules on their own (services/trading/accounts.py), without an engine: the type must
exist, the leverage defaults to the platform's capped by the type and may not exceed it, and a
user holds at most the allowed number of accounts."""

from __future__ import annotations

import pytest

from kit.data.account_types import AccountType
from kit.refusal import Refusal, RefusalKind
from services.trading.accounts import account_type_named, check_account_limit, opening_leverage
from tests.trading.support import D, account_types

TYPES = account_types()
CAPPED = AccountType("capped", "Capped", D(60), D(0), 50)


def test_a_known_type_is_found_an_unknown_one_refused_listing_the_types() -> None:
    assert account_type_named(TYPES, "pro") is TYPES["pro"]
    with pytest.raises(Refusal) as refused:
        account_type_named(TYPES, "platinum")
    assert (refused.value.field, refused.value.reason) == ("account_type", "UNKNOWN_ACCOUNT_TYPE")
    assert "'platinum'" in refused.value.message
    assert "standard, pro, raw_spread, zero" in refused.value.message


def test_leverage_defaults_to_the_platforms_capped_by_the_type() -> None:
    assert opening_leverage(0, 100, TYPES["pro"]) == 100
    assert opening_leverage(0, 100, CAPPED) == 50
    assert opening_leverage(20, 100, CAPPED) == 20


def test_leverage_above_the_types_maximum_is_refused() -> None:
    with pytest.raises(Refusal) as refused:
        opening_leverage(51, 100, CAPPED)
    assert (refused.value.field, refused.value.reason) == ("leverage", "INVALID_LEVERAGE")
    assert "1:50" in refused.value.message


def test_the_account_limit() -> None:
    check_account_limit(9, 10)
    with pytest.raises(Refusal) as refused:
        check_account_limit(10, 10)
    assert refused.value.kind is RefusalKind.PRECONDITION
    assert (refused.value.reason, refused.value.metadata) == ("ACCOUNT_LIMIT", {"limit": "10"})

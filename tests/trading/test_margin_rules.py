"""The margin a fill takes and the check that free margin covers it (services/trading/risk.py),
without an engine: a hedging leg adds only what its unhedged volume needs, a fill that would
leave negative free margin is refused INSUFFICIENT_MARGIN with both figures, and so is a
leverage change the equity cannot margin (LEVERAGE_CHANGE_REFUSED)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kit.refusal import Refusal, RefusalKind
from services.trading.model import Exposure, Position, Side
from services.trading.risk import added_margin, check_leverage_change, check_margin_cover
from tests.trading.support import T0

D = Decimal


def long_btc(volume: str, margin: str) -> Exposure:
    exposure = Exposure()
    position = Position(
        1, 7, 1, "BTCUSD", Side.BUY, D(volume), D(65000), 100, D(margin), D(volume), T0
    )
    exposure.add(position, 1)
    return exposure


def test_a_first_position_adds_its_own_margin() -> None:
    assert added_margin(None, Side.BUY, D(1), D("650.10")) == D("650.10")


def test_the_same_side_adds_its_margin_on_top() -> None:
    assert added_margin(long_btc("1", "650.10"), Side.BUY, D(1), D("650.10")) == D("650.10")


def test_a_full_hedge_releases_the_margin_held() -> None:
    # 1 long against 1 short: no margin at all, so the hedge gives back what the long held.
    assert added_margin(long_btc("1", "650.10"), Side.SELL, D(1), D("650.00")) == D("-650.10")


def test_a_partial_hedge_margins_the_larger_sides_excess() -> None:
    # 1 long against 0.4 short: 0.6 of the long's 650.10 stays margined (390.06).
    assert added_margin(long_btc("1", "650.10"), Side.SELL, D("0.4"), D("260.00")) == D("-260.04")


def test_a_bigger_opposite_leg_is_margined_at_its_own_rate() -> None:
    # 1 long against 3 short at 1950: 2 of 3 short units margined, 1300; the long's 650.10 goes.
    assert added_margin(long_btc("1", "650.10"), Side.SELL, D(3), D(1950)) == D("649.90")


def test_free_margin_covering_the_fill_exactly_passes() -> None:
    # equity 1000 - spread 10 - commission 5 - held 300 - new 685 = 0
    check_margin_cover(D(1000), D(300), D(10), D(5), D(685))


def test_a_cent_short_is_refused_with_both_figures() -> None:
    with pytest.raises(Refusal) as refused:
        check_margin_cover(D(1000), D(300), D(10), D(5), D("685.01"))
    assert refused.value.kind is RefusalKind.PRECONDITION
    assert refused.value.reason == "INSUFFICIENT_MARGIN"
    assert refused.value.metadata == {"required_margin": "685.01", "free_margin": "700.00"}


def test_a_leverage_the_equity_covers_is_allowed() -> None:
    check_leverage_change(10, D("1000.00"), D("1000.00"))


def test_a_leverage_needing_more_margin_than_equity_is_refused_with_both_figures() -> None:
    with pytest.raises(Refusal) as refused:
        check_leverage_change(10, D("1000.004"), D("999.996"))
    assert refused.value.kind is RefusalKind.PRECONDITION
    assert refused.value.reason == "LEVERAGE_CHANGE_REFUSED"
    assert refused.value.metadata == {"required_margin": "1000.00", "equity": "1000.00"}
    assert refused.value.message.startswith("at 1:10 the open positions need 1000.00 USD")

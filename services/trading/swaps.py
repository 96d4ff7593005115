"""Swaps: what one open position is charged (or paid) at a daily rollover. Pure functions.

The rollover is at 22:00 UTC every day. An instrument with trading sessions (forex, metals) is
charged at the rollovers of Monday to Friday, three days' worth on its triple-swap weekday (the
Wednesday's covers the weekend); one without sessions (crypto, trading 24/7) every day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta
from decimal import Decimal

from kit.data.instruments import Instrument, SwapType
from services.trading.model import ZERO, Position, Quote, Side, money

ROLLOVER_TIME = time(22, 0)
ONE_DAY = timedelta(days=1)
DAYS_PER_YEAR = Decimal(360)  # percent-per-year swaps accrue 1/360 a day (money-market days)


def rollover_at_or_before(now: datetime) -> datetime:
    """The latest rollover instant at or before `now` (UTC)."""
    today = datetime.combine(now.date(), ROLLOVER_TIME, tzinfo=now.tzinfo)
    return today if now >= today else today - ONE_DAY


def rollovers_due(last_charged: datetime, latest: datetime) -> Iterator[datetime]:
    """The rollovers after `last_charged` up to and including `latest`, oldest first: each one
    passed since the last charged, so none is charged twice or skipped."""
    rollover = last_charged + ONE_DAY
    while rollover <= latest:
        yield rollover
        rollover += ONE_DAY


def swap_days(inst: Instrument, rollover: datetime) -> int:
    """How many days of swap the rollover at `rollover` charges on `inst` (0: none)."""
    if inst.swap_type == SwapType.NONE:
        return 0
    weekday = rollover.isoweekday()
    if inst.sessions and weekday > 5:  # no trading day ends at a weekend rollover
        return 0
    return 3 if weekday == inst.triple_swap_weekday else 1


def swap_amount(
    inst: Instrument, side: Side, volume: Decimal, price: Decimal, days: int
) -> Decimal:
    """The swap in money (negative: a charge) of `volume` lots of `side` for `days` days;
    `price` values percent-per-year swaps (the position's close price at the rollover)."""
    if days == 0:
        return ZERO
    rate = inst.swap_long if side is Side.BUY else inst.swap_short
    units = volume * inst.contract_size
    if inst.swap_type == SwapType.POINTS:
        return money(units * rate * inst.tick_size * days)
    return money(units * price * rate / 100 / DAYS_PER_YEAR * days)


def position_swap(
    inst: Instrument, position: Position, quote: Quote | None, rollover: datetime
) -> Decimal:
    """What the rollover at `rollover` charges `position` (negative) or pays it. `quote` is the
    account's quote of the symbol (its type's spread); with none yet after a restart, the
    position is valued at its open price."""
    days = swap_days(inst, rollover)
    if not days:
        return ZERO
    price = position.open_price if quote is None else position.close_price(quote)
    return swap_amount(inst, position.side, position.volume, price, days)

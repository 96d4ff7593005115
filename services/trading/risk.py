"""Pure risk functions: the margin a new position adds (hedged), whether free margin covers it,
margin-call and stop-out levels, which position a stop-out closes next, and the prices at which
an account must be looked at again. No state, no side effects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from kit.data.instruments import Instrument
from kit.refusal import precondition_failed
from services.trading.model import (
    HUNDRED,
    ZERO,
    Exposure,
    Position,
    Quote,
    Side,
    hedged_margin,
    margin_of,
    money,
)
from services.trading.triggers import Book

DEFAULT_MARGIN_CALL_LEVEL = Decimal(60)


def added_margin(exposure: Exposure | None, side: Side, units: Decimal, margin: Decimal) -> Decimal:
    """The account margin a new position (`units` of `side` needing `margin` alone) adds to the
    symbol's `exposure`: only the unhedged volume needs margin, so a hedging leg may add none."""
    if exposure is None:
        return margin
    return exposure.margin_with(side, units, margin) - exposure.margin()


def check_margin_cover(
    equity: Decimal, margin: Decimal, spread_cost: Decimal, commission: Decimal, extra: Decimal
) -> None:
    """Refuses (INSUFFICIENT_MARGIN) a fill whose free margin after it, spread and commission
    paid and `extra` margin taken on top of the account's `margin`, would be negative."""
    free_after = equity - spread_cost - commission - margin - extra
    if free_after < 0:
        raise precondition_failed(
            "INSUFFICIENT_MARGIN",
            "free margin does not cover the margin this order needs",
            required_margin=str(extra),
            free_margin=str(money(equity - margin)),
        )


def strictest_levels(instruments: Iterable[Instrument]) -> tuple[Decimal, Decimal]:
    """(margin call, stop-out) levels in percent: the highest of the instruments' groups."""
    mc, so = DEFAULT_MARGIN_CALL_LEVEL, ZERO
    first = True
    for inst in instruments:
        if first:
            mc, so, first = inst.margin_call_level, inst.stop_out_level, False
        else:
            mc, so = max(mc, inst.margin_call_level), max(so, inst.stop_out_level)
    return mc, so


def next_to_stop_out(positions: Iterable[Position], quotes: Mapping[str, Quote]) -> Position | None:
    """The position a stop-out closes next: the largest loss at the current quotes (the oldest
    on a tie); positions with no quote yet cannot be valued, so are not chosen."""
    worst: tuple[Decimal, int, Position] | None = None
    for p in positions:
        quote = quotes.get(p.symbol)
        if quote is None:
            continue
        candidate = (p.pnl_at(p.close_price(quote)), p.position_id, p)
        if worst is None or candidate[:2] < worst[:2]:
            worst = candidate
    return None if worst is None else worst[2]


def watch_levels(
    exposure: Mapping[str, Exposure],
    quotes: Mapping[str, Quote],
    equity: Decimal,
    margin: Decimal,
    margin_call_level: Decimal,
    stop_out_level: Decimal,
    in_margin_call: bool,
) -> list[tuple[str, Book, Decimal]]:
    """The (symbol, book, price) levels at which an account's margin must be checked again.

    The headroom (equity minus the equity at the next threshold) is split evenly over the
    account's exposures (each symbol's long and short side). A long side can only lose its
    share when the bid falls by share / units, a short side when the ask rises by share / units;
    until one of those prices is crossed the account cannot have reached the threshold, so
    ticks elsewhere never touch it. In margin call, a second set of levels in the other direction
    notices the recovery.
    """
    sides: list[tuple[str, Quote, Decimal, bool]] = []
    for symbol, side in exposure.items():
        quote = quotes.get(symbol)
        if quote is None:
            continue
        if side.long_units:
            sides.append((symbol, quote, side.long_units, True))
        if side.short_units:
            sides.append((symbol, quote, side.short_units, False))
    if not sides:
        return []
    floor = stop_out_level if in_margin_call else margin_call_level
    share = (equity - margin * floor / HUNDRED) / len(sides)
    levels = []
    for symbol, quote, units, is_long in sides:
        step = share / units
        if is_long:
            levels.append((symbol, Book.BID_FALL, quote.bid - step))
        else:
            levels.append((symbol, Book.ASK_RISE, quote.ask + step))
    if in_margin_call:
        gain = (margin * margin_call_level / HUNDRED - equity) / len(sides)
        for symbol, quote, units, is_long in sides:
            step = gain / units
            if is_long:
                levels.append((symbol, Book.BID_RISE, quote.bid + step))
            else:
                levels.append((symbol, Book.ASK_FALL, quote.ask - step))
    return levels


def leverage_change_margins(
    positions: Iterable[Position], instruments: Mapping[str, Instrument], leverage: int
) -> dict[int, tuple[int, Decimal]]:
    """position id -> (leverage, margin) of each open position margined at a new account
    leverage (capped by its instrument), at its open price as when it opened."""
    margins = {}
    for p in positions:
        inst = instruments[p.symbol]
        position_leverage = min(leverage, inst.max_leverage)
        margins[p.position_id] = (
            position_leverage,
            margin_of(p.volume, inst.contract_size, p.open_price, position_leverage),
        )
    return margins


def check_leverage_change(leverage: int, required: Decimal, equity: Decimal) -> None:
    """Refuses (LEVERAGE_CHANGE_REFUSED) a new account leverage at which the open positions
    would need more margin (`required`) than the equity."""
    if required > equity:
        raise precondition_failed(
            "LEVERAGE_CHANGE_REFUSED",
            f"at 1:{leverage} the open positions need {money(required)} USD of margin, more"
            f" than the equity {money(equity)}",
            required_margin=str(money(required)),
            equity=str(money(equity)),
        )


def hedged_total(
    positions: Iterable[Position], margins: Mapping[int, tuple[int, Decimal]]
) -> Decimal:
    """The account margin the positions would need with the given per-position margins: the
    sum over symbols of each symbol's hedged margin (model.hedged_margin)."""
    sides: dict[str, list[Decimal]] = {}  # symbol -> [long units, margin, short units, margin]
    for p in positions:
        figures = sides.setdefault(p.symbol, [ZERO, ZERO, ZERO, ZERO])
        at = 0 if p.side is Side.BUY else 2
        figures[at] += p.units
        figures[at + 1] += margins[p.position_id][1]
    return sum((hedged_margin(*figures) for figures in sides.values()), ZERO)

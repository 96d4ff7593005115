"""Order validation and sizing: pure checks of a request against an instrument, a quote and the
account's leverage. Each raises a Refusal naming the field at fault; none changes anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from kit.data.account_types import AccountType
from kit.data.instruments import Instrument
from kit.refusal import Refusal, invalid_field, not_found, precondition_failed
from services.trading.model import OrderType, Quote, Side, money

MAX_LEVERAGE = 2000
MAX_DEPOSIT = Decimal(1_000_000)


@dataclass(slots=True)  # immutable by convention: frozen costs ~6x per construction
class OrderRequest:
    symbol: str
    side: Side
    type: OrderType
    volume: Decimal | None = None
    margin: Decimal | None = None
    leverage: int = 0  # 0: the account's (capped by the instrument)
    price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    client_order_id: str = ""
    expire_at: datetime | None = None
    trailing_stop: Decimal | None = None  # distance for the position's stop-loss to trail at

    def fingerprint(self) -> str:
        """What a retry with the same client_order_id must repeat exactly."""

        def d(v: Decimal | None) -> str:
            return "" if v is None else format(v.normalize(), "f")

        expire = self.expire_at.isoformat() if self.expire_at else ""
        fields = [
            self.symbol,
            str(int(self.side)),
            str(int(self.type)),
            d(self.volume),
            d(self.margin),
            str(self.leverage),
            d(self.price),
            d(self.stop_loss),
            d(self.take_profit),
            expire,
        ]
        if self.trailing_stop is not None:  # appended only when set: older keys stay valid
            fields.append(d(self.trailing_stop))
        return "|".join(fields)


# Refusals of an order before it is looked at (built only when refused: the checks themselves
# are one lookup each on the command path).


def unknown_symbol(symbol: str) -> Refusal:
    return not_found("UNKNOWN_SYMBOL", f"{symbol} is not a listed instrument", symbol=symbol)


def trading_halted(symbol: str, why: str) -> Refusal:
    return precondition_failed(
        "TRADING_HALTED", f"trading in {symbol} is halted: {why}", symbol=symbol
    )


def pending_order_limit(limit: int) -> Refusal:
    return precondition_failed(
        "PENDING_ORDER_LIMIT",
        f"the account already has {limit} pending orders, the most it may hold; cancel one first",
        limit=str(limit),
    )


def check_deposit(amount: Decimal) -> None:
    if amount <= 0 or amount > MAX_DEPOSIT or amount != money(amount):
        raise invalid_field("amount", "must be > 0, at most 1000000 and have at most 2 decimals")


def check_account_leverage(leverage: int) -> None:
    if not 1 <= leverage <= MAX_LEVERAGE:
        raise invalid_field("leverage", f"must be between 1 and {MAX_LEVERAGE}", "INVALID_LEVERAGE")


def check_type_leverage(account_type: AccountType, leverage: int) -> None:
    if leverage > account_type.max_leverage:
        raise invalid_field(
            "leverage",
            f"{account_type.display_name} accounts allow at most 1:{account_type.max_leverage}",
            "INVALID_LEVERAGE",
        )


def check_withdrawal(amount: Decimal, free_margin: Decimal) -> None:
    """A withdrawal: positive, in cents, at most the free margin."""
    if amount <= 0 or amount != money(amount):
        raise invalid_field("amount", "must be > 0 and have at most 2 decimals")
    if amount > free_margin:
        shown = money(max(free_margin, Decimal(0)))
        raise precondition_failed(
            "INSUFFICIENT_FREE_MARGIN",
            f"the free margin is {shown} USD; at most that can be withdrawn",
            free_margin=str(shown),
        )


def order_leverage(account_leverage: int, inst: Instrument, requested: int) -> int:
    """The leverage an order trades at: the account's (capped by the instrument) unless the
    request asks for a lower one."""
    if requested == 0:
        return min(account_leverage, inst.max_leverage)
    if requested < 0 or requested > inst.max_leverage:
        raise invalid_field(
            "leverage",
            f"{inst.symbol} allows at most 1:{inst.max_leverage}",
            "INVALID_LEVERAGE",
        )
    if requested > account_leverage:
        raise invalid_field(
            "leverage", f"above the account leverage 1:{account_leverage}", "INVALID_LEVERAGE"
        )
    return requested


def order_volume(inst: Instrument, req: OrderRequest, leverage: int, price: Decimal) -> Decimal:
    """The order's volume: as given, or the most `margin` buys at `leverage` and `price`."""
    if req.volume is not None and req.margin is not None:
        raise invalid_field("margin", "give either volume, or margin and leverage, not both")
    if req.volume is not None:
        field, volume = "volume", req.volume
    elif req.margin is not None:
        field = "margin"
        raw = req.margin * leverage / (inst.contract_size * price)
        volume = (raw / inst.volume_step).to_integral_value(ROUND_FLOOR) * inst.volume_step
    else:
        raise invalid_field("volume", "required: give volume, or margin and leverage")
    if volume < inst.volume_min:
        raise invalid_field(
            field, f"gives less than the minimum volume {inst.volume_min}", "INVALID_VOLUME"
        )
    if volume > inst.volume_max:
        raise invalid_field(
            field, f"gives more than the maximum volume {inst.volume_max}", "INVALID_VOLUME"
        )
    if volume % inst.volume_step != 0:
        raise invalid_field(field, f"must be a multiple of {inst.volume_step}", "INVALID_VOLUME")
    return volume


def check_close_volume(inst: Instrument, open_volume: Decimal, volume: Decimal) -> None:
    """A partial close: at most what is open, in steps, leaving none or at least the minimum."""
    if volume > open_volume:
        raise invalid_field("volume", f"above the open volume {open_volume}", "INVALID_VOLUME")
    if volume % inst.volume_step != 0:
        raise invalid_field("volume", f"must be a multiple of {inst.volume_step}", "INVALID_VOLUME")
    rest = open_volume - volume
    if 0 < rest < inst.volume_min:
        raise invalid_field(
            "volume",
            f"would leave less than the minimum {inst.volume_min} open",
            "INVALID_VOLUME",
        )


def check_fresh(quote: Quote, now: datetime, max_age: timedelta) -> None:
    if now - quote.time > max_age:
        raise precondition_failed(
            "STALE_QUOTE",
            f"the latest {quote.symbol} quote is older than {max_age.total_seconds():g}s",
            symbol=quote.symbol,
            quote_time=quote.time.isoformat(),
        )


def entry_price(
    inst: Instrument, req: OrderRequest, quote: Quote, now: datetime, max_age: timedelta
) -> Decimal:
    """Checks the order's prices against the instrument and the quote; returns the price it
    opens at (the quote's for MARKET orders, its own for pending ones)."""
    if req.price is not None or req.stop_loss is not None or req.take_profit is not None:
        for name in ("price", "stop_loss", "take_profit"):
            check_tick(inst, name, getattr(req, name))
    # Market orders fill at the quote and pending ones are judged against it: a stale quote
    # refuses both.
    check_fresh(quote, now, max_age)
    if req.type is OrderType.MARKET:
        if req.price is not None:
            raise invalid_field("price", "must be empty for MARKET orders")
        if req.expire_at is not None:
            raise invalid_field("expire_time", "only pending orders expire")
        entry = quote.ask if req.side is Side.BUY else quote.bid
        exit_price = quote.bid if req.side is Side.BUY else quote.ask
        check_levels(req.side, exit_price, req.stop_loss, req.take_profit, "the current price")
    else:
        if req.price is None:
            raise invalid_field("price", "required for LIMIT and STOP orders")
        if req.expire_at is not None and req.expire_at <= now:
            raise invalid_field("expire_time", "must be in the future")
        entry = req.price
        check_pending_price(req.side, req.type, req.price, quote)
        check_levels(req.side, entry, req.stop_loss, req.take_profit, "the order price")
    return entry


def check_tick(inst: Instrument, field: str, value: Decimal | None) -> None:
    if value is None:
        return
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > inst.price_decimals and value != round(value, inst.price_decimals):
        raise invalid_field(
            field,
            f"{inst.symbol} prices have at most {inst.price_decimals} decimals",
            "INVALID_PRICE_LEVEL",
        )


def check_pending_price(side: Side, type: OrderType, price: Decimal, quote: Quote) -> None:
    if type is OrderType.LIMIT:
        if side is Side.BUY and price >= quote.ask:
            raise invalid_field(
                "price", f"a BUY LIMIT must be below the ask {quote.ask}", "INVALID_PRICE_LEVEL"
            )
        if side is Side.SELL and price <= quote.bid:
            raise invalid_field(
                "price", f"a SELL LIMIT must be above the bid {quote.bid}", "INVALID_PRICE_LEVEL"
            )
    else:
        if side is Side.BUY and price <= quote.ask:
            raise invalid_field(
                "price", f"a BUY STOP must be above the ask {quote.ask}", "INVALID_PRICE_LEVEL"
            )
        if side is Side.SELL and price >= quote.bid:
            raise invalid_field(
                "price", f"a SELL STOP must be below the bid {quote.bid}", "INVALID_PRICE_LEVEL"
            )


def check_levels(
    side: Side,
    reference: Decimal,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    what: str,
) -> None:
    """A BUY's SL below and TP above `reference`; a SELL's the other way round."""
    if side is Side.BUY:
        if stop_loss is not None and stop_loss >= reference:
            raise invalid_field(
                "stop_loss",
                f"a BUY stop-loss must be below {what} {reference}",
                "INVALID_PRICE_LEVEL",
            )
        if take_profit is not None and take_profit <= reference:
            raise invalid_field(
                "take_profit",
                f"a BUY take-profit must be above {what} {reference}",
                "INVALID_PRICE_LEVEL",
            )
    else:
        if stop_loss is not None and stop_loss <= reference:
            raise invalid_field(
                "stop_loss",
                f"a SELL stop-loss must be above {what} {reference}",
                "INVALID_PRICE_LEVEL",
            )
        if take_profit is not None and take_profit >= reference:
            raise invalid_field(
                "take_profit",
                f"a SELL take-profit must be below {what} {reference}",
                "INVALID_PRICE_LEVEL",
            )

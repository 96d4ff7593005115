"""Quotes as an account type sees them. The published quote carries the instrument's default
markup (the Standard account's); a type with another markup gets it moved in (or out) by half
the difference on each side, exactly as the Trading engine fills that type's orders."""

from __future__ import annotations

from exness.market.v1 import market_pb2

from kit.data.account_types import AccountType
from kit.data.instruments import Instrument
from kit.decimals import format_decimal, parse_decimal


def typed_quote(
    quote: market_pb2.Quote, spec: Instrument, account_type: AccountType
) -> market_pb2.Quote:
    """`quote` with the account type's spread; the same message when the type trades at the
    default markup."""
    shift = account_type.quote_shift(spec)
    if not shift:
        return quote
    typed = market_pb2.Quote()
    typed.CopyFrom(quote)
    places = spec.price_decimals
    typed.bid = format_decimal(parse_decimal(quote.bid) + shift, places)
    typed.ask = format_decimal(parse_decimal(quote.ask) - shift, places)
    return typed

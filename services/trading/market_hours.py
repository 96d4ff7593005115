"""Market hours: whether an instrument may be traded at an instant, and the refusal when not.
Pure functions over the instrument's weekly sessions (kit.data.sessions).

`sessions_enforced` False makes every instrument trade around the clock, so a platform can be
tested at any hour; an instrument without sessions (crypto) always trades.
"""

from __future__ import annotations

from datetime import datetime

from kit.data.instruments import Instrument
from kit.data.sessions import is_open, next_open
from kit.refusal import precondition_failed


def is_trading(inst: Instrument, now: datetime, sessions_enforced: bool) -> bool:
    return not sessions_enforced or is_open(inst.sessions, now)


def check_trading(inst: Instrument, now: datetime, sessions_enforced: bool) -> None:
    """Refuses (MARKET_CLOSED, with when it opens) outside the instrument's sessions."""
    if not is_trading(inst, now, sessions_enforced):
        opens_at = next_open(inst.sessions, now)
        raise precondition_failed(
            "MARKET_CLOSED",
            f"{inst.symbol} is outside its trading session; it opens at {opens_at.isoformat()}",
            symbol=inst.symbol,
            opens_at=opens_at.isoformat(),
        )

"""Weekly trading sessions (UTC): when an instrument may be traded, and when it opens next.

A session is a window in the week from (weekday, minute of day) to (weekday, minute of day),
ISO weekdays (1 Monday .. 7 Sunday); it may wrap past Sunday midnight, e.g. Sunday 21:05 to
Friday 21:00. An instrument without sessions is always open (crypto).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

_WEEK = 7 * 1440  # minutes


@dataclass(frozen=True, slots=True)
class TradingSession:
    open_weekday: int  # ISO: 1 Monday .. 7 Sunday
    open_minute: int  # minutes after midnight UTC
    close_weekday: int
    close_minute: int  # the close itself is outside the window

    @property
    def opens(self) -> int:
        """Minute of the week (from Monday 00:00) it opens at."""
        return (self.open_weekday - 1) * 1440 + self.open_minute

    @property
    def closes(self) -> int:
        return (self.close_weekday - 1) * 1440 + self.close_minute

    def contains(self, minute: int) -> bool:
        opens, closes = self.opens, self.closes
        if opens < closes:
            return opens <= minute < closes
        return minute >= opens or minute < closes  # wraps past Sunday midnight


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _minute_of_week(now: datetime) -> int:
    return (now.isoweekday() - 1) * 1440 + now.hour * 60 + now.minute


def is_open(sessions: Sequence[TradingSession], now: datetime) -> bool:
    """Whether an instrument with these sessions trades at `now` (UTC); no sessions: always."""
    if not sessions:
        return True
    minute = _minute_of_week(now)
    return any(s.contains(minute) for s in sessions)


def next_open(sessions: Sequence[TradingSession], now: datetime) -> datetime:
    """When the next session opens after `now` (for a closed instrument: when it reopens)."""
    minute = _minute_of_week(now)
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=minute)  # Monday 00:00
    ahead = min((s.opens - minute) % _WEEK or _WEEK for s in sessions)
    return start + timedelta(minutes=minute + ahead)

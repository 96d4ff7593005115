// Whether an instrument trades now, from its weekly sessions (UTC windows; none means always
// open, as for crypto), and when a closed one opens. The engine refuses orders and closes
// outside a session with MARKET_CLOSED: the ticket says so before the trader tries.
import type { Instrument, TradingSession } from "../../gen/ts/exness/market/v1/market_pb";

const MINUTES_PER_DAY = 1440;
const MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY;
/** 1970-01-01 was a Thursday: ISO weekday 4. */
const EPOCH_WEEKDAY = 4;

export type MarketState = { open: true } | { open: false; opensAtMs: number | null };

/** Minute of the ISO week (Monday 00:00 UTC = 0) of an instant. */
function minuteOfWeek(ms: number): number {
  const minutes = Math.floor(ms / 60_000);
  const days = Math.floor(minutes / MINUTES_PER_DAY);
  const weekday = ((days + EPOCH_WEEKDAY - 1) % 7 + 7) % 7; // 0 = Monday
  return weekday * MINUTES_PER_DAY + (minutes - days * MINUTES_PER_DAY);
}

/** Minute of the week of an ISO weekday and "HH:MM"; null when malformed. */
function weekMinute(weekday: number, time: string): number | null {
  const m = /^(\d{1,2}):(\d{2})$/.exec(time.trim());
  if (!m || weekday < 1 || weekday > 7) return null;
  const hh = Number(m[1]);
  const mm = Number(m[2]);
  if (hh > 24 || mm > 59) return null;
  return (weekday - 1) * MINUTES_PER_DAY + hh * 60 + mm;
}

function weeklyWindow(s: TradingSession): [number, number] | null {
  const open = weekMinute(s.openWeekday, s.openTime);
  const close = weekMinute(s.closeWeekday, s.closeTime);
  return open === null || close === null ? null : [open, close];
}

/** Inside [open, close) of the weekly window, which may wrap over the end of the week. */
function inside(now: number, [open, close]: [number, number]): boolean {
  if (open === close) return true; // a window of the whole week
  return open < close ? now >= open && now < close : now >= open || now < close;
}

export function marketState(inst: Instrument | undefined, nowMs: number): MarketState {
  const windows = (inst?.sessions ?? []).map(weeklyWindow).filter((w): w is [number, number] => w !== null);
  if (windows.length === 0) return { open: true };
  const now = minuteOfWeek(nowMs);
  if (windows.some((w) => inside(now, w))) return { open: true };
  const wait = Math.min(...windows.map(([open]) => (open - now + MINUTES_PER_WEEK) % MINUTES_PER_WEEK));
  // From the start of the current minute.
  const minuteStart = Math.floor(nowMs / 60_000) * 60_000;
  return { open: false, opensAtMs: Number.isFinite(wait) ? minuteStart + wait * 60_000 : null };
}

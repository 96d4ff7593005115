// Whether a price may be traded on: a quote older than its instrument's maximum age is stale
// (the engine refuses market orders on it with STALE_QUOTE), and every price is in doubt while
// the quote stream is reconnecting. The age is computed here from the quote's own time, so a
// server that keeps re-sending an old price is caught as well as a feed that stops.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Instrument, Quote } from "../../gen/ts/exness/market/v1/market_pb";
import type { StreamState } from "./api/stream";

/**
 * The engine's default maximum quote age (EXNESS_MAX_QUOTE_AGE). Instrument carries no age of
 * its own yet; when it does, maxQuoteAgeMs reads it and this stays the fallback.
 */
export const DEFAULT_MAX_QUOTE_AGE_MS = 10_000;

export function maxQuoteAgeMs(_inst: Instrument | undefined): number {
  return DEFAULT_MAX_QUOTE_AGE_MS;
}

export type Freshness =
  | { state: "fresh"; ageMs: number }
  | { state: "stale"; ageMs: number; reason: string }
  | { state: "offline"; ageMs: number | null; reason: string }
  | { state: "none"; ageMs: null; reason: string };

export function freshnessOf(
  quote: Quote | undefined, inst: Instrument | undefined, stream: StreamState, now: number,
): Freshness {
  const ageMs = quote?.time ? Math.max(0, now - timestampMs(quote.time)) : null;
  if (stream !== "live") {
    return { state: "offline", ageMs, reason: "Reconnecting to prices: trading waits for a live price." };
  }
  if (!quote) return { state: "none", ageMs: null, reason: "No price yet." };
  const limit = maxQuoteAgeMs(inst);
  // MarketData's own mark counts too (it knows its feed stalled even if clocks disagree).
  if (ageMs === null || ageMs > limit || markedStale(quote)) {
    const age = ageMs === null ? "of unknown age" : `${fmtAge(ageMs)} old`;
    return { state: "stale", ageMs: ageMs ?? 0, reason: `The ${quote.symbol} price is ${age} (limit ${fmtAge(limit)}): trading is paused.` };
  }
  return { state: "fresh", ageMs };
}

/** Quote.stale, set by MarketData when it serves a quote past the maximum age. */
function markedStale(q: Quote): boolean {
  return (q as { stale?: boolean }).stale === true;
}

/** "12 s", "3 min 4 s", "2 h 5 min". */
export function fmtAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

// Decimal arithmetic and formatting for prices, volumes and money.
// Server values stay decimal strings; arithmetic goes through decimal.js so that no float ever
// touches a price or an amount shown to the trader.
import Decimal from "decimal.js";

Decimal.set({ precision: 40, rounding: Decimal.ROUND_HALF_UP });

export { Decimal };

/** Parses a decimal string; empty or malformed gives null (never NaN). */
export function dec(value: string | number | Decimal | null | undefined): Decimal | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Decimal) return value;
  const text = typeof value === "number" ? String(value) : value.trim();
  if (text === "") return null;
  try {
    const d = new Decimal(text);
    return d.isFinite() ? d : null;
  } catch {
    return null;
  }
}

/** True when `text` is a plain positive decimal a user may type (e.g. "0.01", "1200"). */
export function isPositiveDecimal(text: string): boolean {
  if (!/^\d+(\.\d+)?$/.test(text.trim())) return false;
  const d = dec(text);
  return d !== null && d.gt(0);
}

const groupFmt = new Intl.NumberFormat("en-US", { useGrouping: true, maximumFractionDigits: 0 });

/** Fixed decimals with thousands separators, computed from the decimal string (no float). */
export function fmtFixed(value: Decimal | string | null | undefined, decimals: number, signed = false): string {
  const d = dec(value as string | Decimal | null | undefined);
  if (d === null) return "—";
  const fixed = d.toFixed(decimals, Decimal.ROUND_HALF_UP);
  const negative = fixed.startsWith("-");
  const body = negative ? fixed.slice(1) : fixed;
  const [intPart, frac] = body.split(".");
  // BigInt keeps grouping exact for any size of integer part.
  const grouped = groupFmt.format(BigInt(intPart));
  const isZero = /^[0.]+$/.test(body);
  const sign = negative && !isZero ? "−" : signed && !isZero ? "+" : "";
  return sign + grouped + (frac !== undefined ? "." + frac : "");
}

/** A price with the instrument's decimals. */
export function fmtPrice(value: Decimal | string | null | undefined, decimals: number): string {
  return fmtFixed(value, decimals);
}

/** USD money, 2 decimals. */
export function fmtMoney(value: Decimal | string | null | undefined, signed = false): string {
  return fmtFixed(value, 2, signed);
}

/** Lots: as many decimals as the value needs, at least 2. */
export function fmtVolume(value: Decimal | string | null | undefined): string {
  const d = dec(value as string | Decimal | null | undefined);
  if (d === null) return "—";
  return d.toFixed(Math.max(2, d.decimalPlaces()));
}

/** Number of decimals of a step such as "0.01" (2) or "1" (0). */
export function decimalsOf(step: string): number {
  const d = dec(step);
  return d === null ? 2 : d.decimalPlaces();
}

/** -1, 0 or 1 for a signed decimal; 0 when missing. */
export function signOf(value: Decimal | string | null | undefined): -1 | 0 | 1 {
  const d = dec(value as string | Decimal | null | undefined);
  if (d === null || d.isZero()) return 0;
  return d.isNegative() ? -1 : 1;
}

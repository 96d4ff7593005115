// Trading arithmetic the terminal shows between server updates, with the platform's rules:
// a BUY closes at the bid, a SELL at the ask; P&L = (close - open) x volume x contract size,
// negated for a SELL; margin = volume x contract size x price / leverage.
import type { Instrument, Quote } from "../../gen/ts/exness/market/v1/market_pb";
import { OrderSide, type Account, type Position } from "../../gen/ts/exness/trading/v1/trading_pb";
import { Decimal, dec, fmtPrice } from "./decimal";
import type { Store } from "./store";

/** The price a position would close at now, from the streamed quote; null without one. */
export function closePrice(store: Store, p: Position): Decimal | null {
  const q = store.quotes.get(p.symbol)?.quote;
  if (!q) return null;
  return dec(p.side === OrderSide.BUY ? q.bid : q.ask);
}

/** Floating P&L of a position at the latest quote (falls back to the server's figure). */
export function livePnl(store: Store, p: Position): Decimal | null {
  const inst = store.bySymbol.get(p.symbol);
  const close = closePrice(store, p);
  const open = dec(p.openPrice);
  const volume = dec(p.volume);
  const size = inst ? dec(inst.contractSize) : null;
  if (!close || !open || !volume || !size) return dec(p.unrealizedPnl);
  const diff = close.minus(open).times(volume).times(size);
  return p.side === OrderSide.SELL ? diff.negated() : diff;
}

export interface LiveAccount {
  balance: Decimal | null;
  equity: Decimal | null;
  margin: Decimal | null;
  freeMargin: Decimal | null;
  /** Percent; null when no margin is used. */
  marginLevel: Decimal | null;
  floatingPnl: Decimal | null;
  marginCall: boolean;
  stopOut: boolean;
}

/** Account figures recomputed from streamed quotes between StreamAccount events. */
export function liveAccount(store: Store, a: Account | null): LiveAccount {
  if (!a) {
    return {
      balance: null, equity: null, margin: null, freeMargin: null,
      marginLevel: null, floatingPnl: null, marginCall: false, stopOut: false,
    };
  }
  const balance = dec(a.balance) ?? new Decimal(0);
  let floating = new Decimal(0);
  let margin = new Decimal(0);
  for (const p of store.positions.values()) {
    floating = floating.plus(livePnl(store, p) ?? 0);
    margin = margin.plus(dec(p.margin) ?? 0);
  }
  // Before positions are loaded, trust the server's margin figure.
  if (store.positions.size === 0) margin = dec(a.margin) ?? new Decimal(0);
  const equity = balance.plus(floating);
  const level = margin.gt(0) ? equity.div(margin).times(100) : null;
  const callLevel = dec(a.marginCallLevel) ?? new Decimal(60);
  const stopLevel = dec(a.stopOutLevel) ?? new Decimal(0);
  return {
    balance,
    equity,
    margin,
    freeMargin: equity.minus(margin),
    marginLevel: level,
    floatingPnl: floating,
    marginCall: level !== null && level.lte(callLevel),
    stopOut: level !== null && level.lte(stopLevel),
  };
}

/** Leverage an order will use: the one asked for (or the account's), capped by the instrument. */
export function effectiveLeverage(inst: Instrument, asked: number | null, account: Account | null): number {
  const base = asked && asked > 0 ? asked : account?.leverage || inst.maxLeverage || 1;
  return Math.max(1, Math.min(base, inst.maxLeverage || base));
}

/** volume x contract size x price / leverage. */
export function requiredMargin(inst: Instrument, volume: Decimal, price: Decimal, leverage: number): Decimal {
  const size = dec(inst.contractSize) ?? new Decimal(1);
  return volume.times(size).times(price).div(leverage);
}

/** Volume bought by `margin` at `leverage`, rounded down to the instrument's volume step. */
export function volumeForMargin(inst: Instrument, margin: Decimal, price: Decimal, leverage: number): Decimal {
  const size = dec(inst.contractSize) ?? new Decimal(1);
  const step = dec(inst.volumeStep) ?? new Decimal("0.01");
  const raw = margin.times(leverage).div(size.times(price));
  return raw.div(step).floor().times(step);
}

/** What the engine deducts from free margin at once when filling: units x (ask - bid). */
export function spreadCost(inst: Instrument, volume: Decimal, q: Quote): Decimal {
  const size = dec(inst.contractSize) ?? new Decimal(1);
  const spread = (dec(q.ask) ?? new Decimal(0)).minus(dec(q.bid) ?? 0);
  return volume.times(size).times(Decimal.max(spread, 0));
}

/**
 * Why a stop loss or take profit would be refused, in words naming the field, or null. As the
 * engine checks it: against the price the position would close at now (a BUY closes at the
 * bid, a SELL at the ask), or against the order price for a pending order.
 */
export function levelProblem(
  side: OrderSide, kind: "sl" | "tp", level: Decimal, q: Quote, pendingPrice: Decimal | null, decimals: number,
): string | null {
  const buy = side === OrderSide.BUY;
  const reference = pendingPrice ?? dec(buy ? q.bid : q.ask);
  if (!reference) return null;
  const what = pendingPrice ? "the order price" : buy ? "the bid" : "the ask";
  const name = kind === "sl" ? "Stop loss" : "Take profit";
  const mustBeBelow = (kind === "sl") === buy;
  const wrong = mustBeBelow ? level.gte(reference) : level.lte(reference);
  if (!wrong) return null;
  return `${name} must be ${mustBeBelow ? "below" : "above"} ${what} (${fmtPrice(reference, decimals)}) for a ${buy ? "buy" : "sell"}.`;
}

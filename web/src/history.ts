// The account's history from the platform: balance operations (ListTransactions: deposits,
// withdrawals, realised P&L, commission, swaps, negative-balance compensation, each with the
// balance after it) and closed trades (ListTrades), both newest first, a page at a time, within
// a period. Totals and CSV export need the whole period, so they walk every page of it.
import { timestampFromMs, timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { LedgerEntryKind, type LedgerEntry, type Trade } from "../../gen/ts/exness/trading/v1/trading_pb";
import type { Clients } from "./api/clients";
import { Decimal, dec } from "./decimal";

/** A time window: start inclusive, end exclusive (epoch ms); null leaves that side open. */
export interface Period {
  startMs: number | null;
  endMs: number | null;
}

export interface Page<T> {
  items: T[];
  /** Empty on the last page. */
  nextToken: string;
}

/** Page size of the walks behind totals and export (the largest the API allows). */
const WALK_PAGE = 500;

export class HistoryApi {
  constructor(private readonly clients: Clients) {}

  async transactions(accountId: string, period: Period, pageSize: number, pageToken: string): Promise<Page<LedgerEntry>> {
    const res = await this.clients.trading.listTransactions({ accountId, pageSize, pageToken, ...timeWindow(period) });
    return { items: res.entries, nextToken: res.nextPageToken };
  }

  async trades(accountId: string, period: Period, pageSize: number, pageToken: string): Promise<Page<Trade>> {
    const res = await this.clients.trading.listTrades({ accountId, pageSize, pageToken, ...timeWindow(period) });
    return { items: res.trades, nextToken: res.nextPageToken };
  }

  /** Every balance operation of the period. */
  allTransactions(accountId: string, period: Period): Promise<LedgerEntry[]> {
    return walk((token) => this.transactions(accountId, period, WALK_PAGE, token));
  }

  /** Every trade closed in the period. */
  allTrades(accountId: string, period: Period): Promise<Trade[]> {
    return walk((token) => this.trades(accountId, period, WALK_PAGE, token));
  }
}

/** The request fields of a period; an open side is left out. */
function timeWindow(p: Period): { startTime?: Timestamp; endTime?: Timestamp } {
  return {
    ...(p.startMs !== null ? { startTime: timestampFromMs(p.startMs) } : {}),
    ...(p.endMs !== null ? { endTime: timestampFromMs(p.endMs) } : {}),
  };
}

async function walk<T>(page: (token: string) => Promise<Page<T>>): Promise<T[]> {
  const out: T[] = [];
  let token = "";
  do {
    const p = await page(token);
    out.push(...p.items);
    token = p.nextToken;
  } while (token);
  return out;
}

/** Words for a ledger kind, also for kinds this build does not know by name yet. */
export function ledgerKindWord(kind: LedgerEntryKind): string {
  switch (kind) {
    case LedgerEntryKind.DEPOSIT:
      return "Deposit";
    case LedgerEntryKind.WITHDRAWAL:
      return "Withdrawal";
    case LedgerEntryKind.REALIZED_PNL:
      return "Realised P&L";
    case LedgerEntryKind.COMMISSION:
      return "Commission";
    case LedgerEntryKind.SWAP:
      return "Swap";
    case LedgerEntryKind.NEGATIVE_BALANCE_RESET:
      return "Negative balance compensation";
    default:
      return "Balance operation";
  }
}

/** The kinds the totals line names, in its order. */
export const TOTAL_KINDS: LedgerEntryKind[] = [
  LedgerEntryKind.DEPOSIT,
  LedgerEntryKind.WITHDRAWAL,
  LedgerEntryKind.REALIZED_PNL,
  LedgerEntryKind.COMMISSION,
  LedgerEntryKind.SWAP,
  LedgerEntryKind.NEGATIVE_BALANCE_RESET,
];

export interface LedgerTotals {
  byKind: Map<LedgerEntryKind, Decimal>;
  net: Decimal;
}

export function ledgerTotals(entries: LedgerEntry[]): LedgerTotals {
  const byKind = new Map<LedgerEntryKind, Decimal>(TOTAL_KINDS.map((k) => [k, new Decimal(0)]));
  let net = new Decimal(0);
  for (const e of entries) {
    const amount = dec(e.amount) ?? new Decimal(0);
    byKind.set(e.kind, (byKind.get(e.kind) ?? new Decimal(0)).plus(amount));
    net = net.plus(amount);
  }
  return { byKind, net };
}

export interface TradeTotals {
  count: number;
  pnl: Decimal;
  commission: Decimal;
  swap: Decimal;
  /** P&L after commission and swaps. */
  net: Decimal;
}

export function tradeTotals(trades: Trade[]): TradeTotals {
  const zero = new Decimal(0);
  const t = { count: trades.length, pnl: zero, commission: zero, swap: zero, net: zero };
  for (const x of trades) {
    t.pnl = t.pnl.plus(dec(x.realizedPnl) ?? 0);
    t.commission = t.commission.plus(dec(x.commission) ?? 0);
    t.swap = t.swap.plus(dec(x.swap) ?? 0);
  }
  t.net = t.pnl.plus(t.commission).plus(t.swap);
  return t;
}

export function entryTimeMs(e: LedgerEntry): number | null {
  return e.createTime ? timestampMs(e.createTime) : null;
}

export function tradeTimeMs(t: Trade): number | null {
  return t.closeTime ? timestampMs(t.closeTime) : null;
}

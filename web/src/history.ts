// The account's history as one list, newest first: closed trades and every other balance
// operation (deposits, negative-balance compensation, and whatever kinds the ledger gains).
//
// The API has no list of balance operations yet (a ListTransactions RPC is planned): today the
// trades come from ListTrades, page by page, and the other operations from what this page has
// seen (Deposit answers, BALANCE_CHANGED events). What happened before that is summed into one
// "not itemised" row so the totals still add up to the balance. A ListTransactions source will
// implement HistorySource and replace TradesAndSessionLedger without the view changing.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { LedgerEntryKind, OrderSide, type LedgerEntry, type Trade } from "../../gen/ts/exness/trading/v1/trading_pb";
import type { Clients } from "./api/clients";
import { Decimal, dec } from "./decimal";
import type { Store } from "./store";

export type HistoryKind = "trade" | "ledger" | "unitemised";

export interface HistoryRow {
  id: string;
  time: number | null;
  kind: HistoryKind;
  /** "Trade", "Deposit", "Negative balance compensation", ... */
  type: string;
  symbol: string;
  side: OrderSide | null;
  volume: string;
  openPrice: string;
  closePrice: string;
  /** USD, signed: what the operation did to the balance. */
  amount: Decimal;
  balanceAfter: string;
  note: string;
  trade?: Trade;
  ledgerKind?: LedgerEntryKind;
}

export interface HistoryQuery {
  /** Only rows at or after this time (epoch ms); null for all time. */
  fromMs: number | null;
}

export interface HistoryResult {
  rows: HistoryRow[];
  /** False when older rows may exist that were not loaded yet. */
  complete: boolean;
}

export interface HistorySource {
  query(q: HistoryQuery): Promise<HistoryResult>;
}

const TRADES_PAGE = 100;

export class TradesAndSessionLedger implements HistorySource {
  private paging: Promise<void> | null = null;

  constructor(private readonly clients: Clients, private readonly store: Store) {}

  private async nextPage(): Promise<void> {
    const res = await this.clients.trading.listTrades({ pageSize: TRADES_PAGE, pageToken: this.store.tradesNextToken });
    this.store.appendOlderTrades(res.trades, res.nextPageToken);
  }

  async query(q: HistoryQuery): Promise<HistoryResult> {
    const s = this.store;
    // Totals need the whole period. Trades come newest first: page on while the oldest one
    // loaded is still inside the period. One pager at a time: queries overlap while it runs.
    while (s.tradesNextToken && (q.fromMs === null || oldestTradeMs(s.trades) >= q.fromMs)) {
      this.paging ??= this.nextPage().finally(() => (this.paging = null));
      await this.paging;
    }
    const complete = !s.tradesNextToken;
    const rows = [...s.trades.map(tradeRow), ...s.ledger.filter((e) => e.kind !== LedgerEntryKind.REALIZED_PNL).map(ledgerRow)];
    if (complete && q.fromMs === null) {
      const rest = unitemised(s, rows);
      if (rest) rows.push(rest);
    }
    const inPeriod = rows.filter((r) => q.fromMs === null || (r.time !== null && r.time >= q.fromMs));
    inPeriod.sort((a, b) => (b.time ?? -Infinity) - (a.time ?? -Infinity));
    return { rows: inPeriod, complete };
  }
}

function oldestTradeMs(trades: Trade[]): number {
  const last = trades[trades.length - 1];
  return last?.closeTime ? timestampMs(last.closeTime) : Infinity;
}

function tradeRow(t: Trade): HistoryRow {
  return {
    id: `trade-${t.tradeId}`, time: t.closeTime ? timestampMs(t.closeTime) : null, kind: "trade", type: "Trade",
    symbol: t.symbol, side: t.side, volume: t.volume, openPrice: t.openPrice, closePrice: t.closePrice,
    amount: dec(t.realizedPnl) ?? new Decimal(0), balanceAfter: "", note: "", trade: t,
  };
}

function ledgerRow(e: LedgerEntry): HistoryRow {
  return {
    id: `ledger-${e.entryId}`, time: e.createTime ? timestampMs(e.createTime) : null, kind: "ledger",
    type: ledgerKindWord(e.kind), symbol: "", side: null, volume: "", openPrice: "", closePrice: "",
    amount: dec(e.amount) ?? new Decimal(0), balanceAfter: e.balanceAfter, note: e.referenceId, ledgerKind: e.kind,
  };
}

/** Balance operations from before this page: balance minus everything itemised. */
function unitemised(s: Store, rows: HistoryRow[]): HistoryRow | null {
  const balance = dec(s.account?.balance);
  if (!balance) return null;
  const itemised = rows.reduce((sum, r) => sum.plus(r.amount), new Decimal(0));
  const rest = balance.minus(itemised);
  if (rest.isZero()) return null;
  return {
    id: "unitemised", time: null, kind: "unitemised", type: "Earlier balance operations (not itemised)",
    symbol: "", side: null, volume: "", openPrice: "", closePrice: "", amount: rest, balanceAfter: "",
    note: "Deposits and other operations from before this session; the platform does not list them yet.",
  };
}

/** Words for a ledger kind, also for kinds this build does not know by name yet. */
export function ledgerKindWord(kind: LedgerEntryKind): string {
  if (kind === LedgerEntryKind.NEGATIVE_BALANCE_RESET) return "Negative balance compensation";
  const name = LedgerEntryKind[kind] as string | undefined;
  if (!name) return "Balance operation";
  const words = name.toLowerCase().replace(/_/g, " ");
  return words[0].toUpperCase() + words.slice(1);
}

export interface HistoryTotals {
  deposits: Decimal;
  trading: Decimal;
  other: Decimal;
  net: Decimal;
}

export function totalsOf(rows: HistoryRow[]): HistoryTotals {
  const zero = new Decimal(0);
  const t = { deposits: zero, trading: zero, other: zero, net: zero };
  for (const r of rows) {
    if (r.kind === "trade") t.trading = t.trading.plus(r.amount);
    else if (r.ledgerKind === LedgerEntryKind.DEPOSIT) t.deposits = t.deposits.plus(r.amount);
    else t.other = t.other.plus(r.amount);
    t.net = t.net.plus(r.amount);
  }
  return t;
}

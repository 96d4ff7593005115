// Application state and change notification. One store, plain data, small typed topics:
// panels subscribe to what they show and re-render only that.
import type { Instrument, Quote } from "../../gen/ts/exness/market/v1/market_pb";
import type { Account, AccountType, LedgerEntry, Order, Position, Trade } from "../../gen/ts/exness/trading/v1/trading_pb";
import type { StreamState } from "./api/stream";
import { dec } from "./decimal";
import { freshnessOf, type Freshness } from "./freshness";

export type Topic =
  | "instruments"
  | "quotes"
  | "selected"
  | "account"
  | "positions"
  | "orders"
  | "trades"
  | "connection"
  | "marginCall"
  | "clock"
  | "ledger"
  | "accounts"
  | "accountSwitch"
  | "view";

/** What a phone shows, one at a time (tablets and desktops show them side by side). */
export type View = "quotes" | "chart" | "trade" | "positions" | "history" | "account";

export interface QuoteView {
  quote: Quote;
  /** Direction of the last bid move, for flashing. */
  dir: -1 | 0 | 1;
  /** Increases on every quote of the symbol, so a view can tell a new tick from a re-render. */
  tick: number;
}

export class Store {
  instruments: Instrument[] = [];
  bySymbol = new Map<string, Instrument>();
  quotes = new Map<string, QuoteView>();
  selected = "";
  /** The trading account every view and call is about; empty until the first one is known
   * (calls without an account id act on the user's default account). */
  accountId = "";
  /** The user's accounts (ListAccounts), the default one first. */
  accounts: Account[] = [];
  /** Account types with their conditions (ListAccountTypes). */
  accountTypes: AccountType[] = [];
  account: Account | null = null;
  positions = new Map<string, Position>();
  orders = new Map<string, Order>();
  trades: Trade[] = [];
  tradesSeen = new Set<string>();
  /** ListTrades' token for the next older page; empty when every trade is loaded. */
  tradesNextToken = "";
  streams: Record<"quotes" | "account", StreamState> = { quotes: "stopped", account: "stopped" };
  marginCallAt: number | null = null;
  lastSequence = 0n;
  /** Balance operations seen by this page (Deposit answers and BALANCE_CHANGED events). */
  ledger: LedgerEntry[] = [];
  private ledgerSeen = new Set<string>();
  view: View = "quotes";
  /** Wall clock of the last "clock" tick: quote ages move even when no quote arrives. */
  now = Date.now();

  private subs = new Map<Topic, Set<() => void>>();
  private pending = new Set<Topic>();
  private frame = 0;

  on(topic: Topic, fn: () => void): () => void {
    let set = this.subs.get(topic);
    if (!set) this.subs.set(topic, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Coalesces notifications to one per animation frame: quotes can arrive many per frame. */
  emit(...topics: Topic[]): void {
    for (const t of topics) this.pending.add(t);
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Notifies now (used where the next step reads the DOM, e.g. after a click). */
  flush(): void {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    const topics = [...this.pending];
    this.pending.clear();
    for (const t of topics) for (const fn of this.subs.get(t) ?? []) fn();
  }

  setInstruments(list: Instrument[]): void {
    this.instruments = list;
    this.bySymbol = new Map(list.map((i) => [i.symbol, i]));
    if (!this.selected || !this.bySymbol.has(this.selected)) this.selected = list[0]?.symbol ?? "";
    this.emit("instruments", "selected");
  }

  select(symbol: string): void {
    if (symbol === this.selected || !this.bySymbol.has(symbol)) return;
    this.selected = symbol;
    this.emit("selected");
  }

  applyQuote(q: Quote): void {
    this.now = Date.now();
    const prev = this.quotes.get(q.symbol);
    let dir: -1 | 0 | 1 = 0;
    if (prev) {
      const a = dec(prev.quote.bid);
      const b = dec(q.bid);
      if (a && b) dir = b.gt(a) ? 1 : b.lt(a) ? -1 : 0;
    }
    if (!this.firstBid.has(q.symbol)) this.firstBid.set(q.symbol, q.bid);
    this.quotes.set(q.symbol, { quote: q, dir, tick: (prev?.tick ?? 0) + 1 });
    this.emit("quotes");
  }

  /** Forgets every price (another account type's spread is coming). */
  clearQuotes(): void {
    this.quotes.clear();
    this.firstBid.clear();
    this.emit("quotes");
  }

  /** Opening bid of the current day (from the 1d candle), the base of the change column. */
  dayOpen = new Map<string, string>();
  private firstBid = new Map<string, string>();

  setDayOpen(symbol: string, price: string): void {
    this.dayOpen.set(symbol, price);
    this.emit("quotes");
  }

  /** Base of the change column: the day's open, else the first bid this page saw. */
  referenceOf(symbol: string): string | null {
    return this.dayOpen.get(symbol) ?? this.firstBid.get(symbol) ?? null;
  }

  /** The account's latest figures; another account's (a late answer after a switch) only
   * refresh its entry in the accounts list. */
  setAccount(a: Account | undefined): void {
    if (!a) return;
    const i = this.accounts.findIndex((x) => x.accountId === a.accountId);
    if (i >= 0) {
      this.accounts[i] = a;
      this.emit("accounts");
    }
    if (this.accountId && a.accountId && a.accountId !== this.accountId) return;
    if (!this.accountId && a.accountId) this.accountId = a.accountId;
    this.account = a;
    this.emit("account");
  }

  setAccounts(list: Account[]): void {
    this.accounts = [...list];
    if (!this.accountId) this.accountId = (list.find((a) => a.isDefault) ?? list[0])?.accountId ?? "";
    this.emit("accounts");
  }

  setAccountTypes(list: AccountType[]): void {
    this.accountTypes = [...list];
    this.emit("accounts");
  }

  /** The account type of the account on screen ("" before it is known). */
  get accountType(): string {
    return this.account?.accountType ?? this.accounts.find((a) => a.accountId === this.accountId)?.accountType ?? "";
  }

  /** Points every view at another account: what was shown of the previous one goes. */
  selectAccount(id: string): void {
    if (id === this.accountId) return;
    this.resetAccountState();
    this.accountId = id;
    this.account = this.accounts.find((a) => a.accountId === id) ?? null;
    this.emit("accountSwitch", "accounts", "account", "positions", "orders", "trades", "marginCall", "ledger");
  }

  /** False for what belongs to another account than the one on screen (a late answer). */
  private mine(x: { accountId: string } | undefined): x is { accountId: string } {
    return !!x && (!x.accountId || !this.accountId || x.accountId === this.accountId);
  }

  upsertPosition(p: Position | undefined): void {
    if (!p || !this.mine(p)) return;
    this.positions.set(p.positionId, p);
    this.emit("positions");
  }

  removePosition(id: string): void {
    if (this.positions.delete(id)) this.emit("positions");
  }

  setPositions(list: Position[]): void {
    this.positions = new Map(list.map((p) => [p.positionId, p]));
    this.emit("positions");
  }

  upsertOrder(o: Order | undefined): void {
    if (!o || !this.mine(o)) return;
    // Only pending orders are listed; any other status removes it from the list.
    if (o.status === 1 /* ORDER_STATUS_PENDING */) this.orders.set(o.orderId, o);
    else this.orders.delete(o.orderId);
    this.emit("orders");
  }

  setOrders(list: Order[]): void {
    this.orders = new Map(list.map((o) => [o.orderId, o]));
    this.emit("orders");
  }

  addTrade(t: Trade | undefined): void {
    if (!t || !this.mine(t) || this.tradesSeen.has(t.tradeId)) return;
    this.tradesSeen.add(t.tradeId);
    this.trades.unshift(t);
    this.emit("trades");
  }

  setTrades(list: Trade[], nextPageToken: string): void {
    this.trades = [...list];
    this.tradesSeen = new Set(list.map((t) => t.tradeId));
    this.tradesNextToken = nextPageToken;
    this.emit("trades");
  }

  /** A further (older) page of ListTrades. */
  appendOlderTrades(list: Trade[], nextPageToken: string): void {
    for (const t of list) {
      if (this.tradesSeen.has(t.tradeId)) continue;
      this.tradesSeen.add(t.tradeId);
      this.trades.push(t);
    }
    this.tradesNextToken = nextPageToken;
    this.emit("trades");
  }

  setView(v: View): void {
    if (v === this.view) return;
    this.view = v;
    this.emit("view");
  }

  tick(now: number): void {
    this.now = now;
    this.emit("clock");
  }

  /** Whether the symbol's price may be traded on now, and why not. */
  freshness(symbol: string): Freshness {
    return freshnessOf(this.quotes.get(symbol)?.quote, this.bySymbol.get(symbol), this.streams.quotes, this.now);
  }

  addLedger(e: LedgerEntry | undefined): void {
    if (!e || !this.mine(e) || this.ledgerSeen.has(e.entryId)) return;
    this.ledgerSeen.add(e.entryId);
    this.ledger.push(e);
    this.emit("ledger");
  }

  setStream(name: "quotes" | "account", state: StreamState): void {
    this.streams[name] = state;
    this.emit("connection");
  }

  reset(): void {
    this.accountId = "";
    this.accounts = [];
    this.resetAccountState();
    this.emit("accounts", "account", "positions", "orders", "trades", "marginCall", "ledger");
  }

  private resetAccountState(): void {
    this.account = null;
    this.positions.clear();
    this.orders.clear();
    this.trades = [];
    this.tradesSeen.clear();
    this.tradesNextToken = "";
    this.ledger = [];
    this.ledgerSeen.clear();
    this.marginCallAt = null;
    this.lastSequence = 0n;
  }
}
